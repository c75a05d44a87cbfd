"""The outbox: tell the queue every ending it has not accepted yet, exactly once.

A worker reports its own ending as it finishes; this catches the ones that did not reach the
queue (a crash, a queue outage) and the endings the sweep decided itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from agent_dispatch.clients.errors import QueueError, TaskConflict, TaskNotFound
from agent_dispatch.clients.queue import RemoteQueueClient
from agent_dispatch.db.sweep_repository import Unreported
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.statuses import JOB_TERMINAL, JobStatus
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.sweep import SweepAction, SweepLine

T = TypeVar("T")


async def send_unreported(
    deps: Deps, job_ids: tuple[str, ...] = (), settle_seconds: float = 10.0, limit: int = 500
) -> list[SweepLine]:
    """Send every untold ending older than `settle_seconds` (and `job_ids` whatever their age).

    Each ending is sent while its job row is locked, so two sweeps at once never both send
    it: the second skips what the first holds, and finds it told once the first commits.
    """
    since = utcnow() - dt.timedelta(seconds=settle_seconds)
    pending = await in_transaction(deps, lambda uow: uow.sweep.unreported(since, limit, job_ids))
    lines = []
    for job_id in pending:
        line = await _send_one(deps, job_id)
        if line is not None:
            lines.append(line)
    return lines


async def _send_one(deps: Deps, job_id: str) -> SweepLine | None:
    uow = deps.uow().__enter__()

    async def run(work: Callable[[UnitOfWork], T]) -> T:
        return await asyncio.to_thread(work, uow)

    try:
        claimed = await run(lambda u: u.sweep.claim_unreported(job_id))
        if claimed is None:  # told meanwhile, or another sweep is telling it now
            return None
        line, queue_holds = await _tell(deps.queue(), claimed)
        if queue_holds is not None:
            await run(lambda u: u.sweep.mark_reported(job_id, queue_holds))
        await run(lambda u: u.commit())
        return line
    finally:
        # The row lock is held across the PATCH on purpose; it ends here, committed or not.
        await asyncio.to_thread(uow.__exit__, None, None, None)


async def _tell(queue: RemoteQueueClient, u: Unreported) -> tuple[SweepLine, str | None]:
    """PATCH the ending; returns the line and the status the queue now holds (to record)."""
    expected = u.expected

    def line(action: SweepAction, detail: str) -> SweepLine:
        return SweepLine(u.queue_task_id, u.job_id, action, detail)

    for _ in range(2):  # a second try when the queue had moved on to another live status
        try:
            if u.status == JobStatus.COMPLETED:
                await queue.change_status(
                    u.queue_task_id, u.status, expected, result=u.result, agent_id=u.agent_id
                )
            else:
                await queue.change_status(u.queue_task_id, u.status, expected, error=u.error)
        except TaskConflict as exc:
            now = exc.current_status
            if now == u.status:
                return line(SweepAction.REPORTED, "the queue had it already"), now
            if now is not None and now not in JOB_TERMINAL and now != expected:
                expected = now
                continue
            # A foreign ending stands (ours cannot replace it); recorded so it is not resent.
            held = now if now in JOB_TERMINAL else None
            return line(SweepAction.CONFLICT, str(exc)), held
        except TaskNotFound as exc:
            return line(SweepAction.GONE, str(exc)), u.status  # nothing left to tell
        except QueueError as exc:  # the flow logs every line; the next sweep tries again
            return line(SweepAction.DEFERRED, str(exc)), None
        return line(SweepAction.REPORTED, f"{expected} -> {u.status}"), u.status
    return line(SweepAction.DEFERRED, "the queue kept moving"), None
