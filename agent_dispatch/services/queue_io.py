"""The remote queue as the lifecycle sees it: pages of OPEN tasks, rejections, status reports."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Protocol

from agent_dispatch.clients.errors import QueueError, TaskConflict, TaskNotFound
from agent_dispatch.clients.queue import RejectedItem
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.deps import Deps, in_transaction

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Incoming:
    spec: JobSpec
    created_at: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    tasks: tuple[Incoming, ...]
    rejected: tuple[RejectedItem, ...]
    next_cursor: str | None
    error: str | None = None  # the queue could not be read: the run stops taking jobs


async def fetch_open_page(deps: Deps, cursor: str | None, limit: int) -> Page:
    """One page of OPEN tasks; a queue failure comes back as `error` (one line, no traceback)."""
    try:
        page = await deps.queue().list_tasks(JobStatus.OPEN, limit=limit, cursor=cursor)
    except QueueError as exc:
        return Page((), (), None, error=str(exc))
    tasks = tuple(
        Incoming(t.to_job_spec(), t.created_at) for t in page.valid if t.status == JobStatus.OPEN
    )
    return Page(tasks, tuple(page.rejected), page.next_cursor)


async def reject_items(deps: Deps, items: tuple[RejectedItem, ...]) -> int:
    """Keep a record of each bad item and report it FAILED on the queue when it has an id."""

    def store(uow: UnitOfWork) -> list[int]:
        return uow.jobs.record_rejections([(i.task_id, i.reason) for i in items])

    row_ids = await in_transaction(deps, store)
    reported = 0
    for item, row_id in zip(items, row_ids, strict=True):
        log.warning("rejected queue item %s: %s", item.task_id or "(no id)", item.reason)
        if item.task_id is None:
            continue
        try:
            ok = await deps.queue().reject(item)
        except QueueError as exc:
            log.warning("could not report rejection of %s: %s", item.task_id, exc)
            continue
        if ok:
            reported += 1
            await in_transaction(deps, _mark_reported(row_id))
    return reported


def _mark_reported(row_id: int) -> Callable[[UnitOfWork], None]:
    return lambda uow: uow.jobs.rejection_reported(row_id)


async def report_status(
    deps: Deps,
    queue_task_id: str,
    status: JobStatus,
    expected: str,
    *,
    result: object = None,
    agent_id: str | None = None,
    error: str | None = None,
) -> str | None:
    """PATCH the queue; None on success, else a one-line reason (the sweep's outbox resends).

    A 409 showing the status we asked for means an earlier try of ours already got through.
    """
    queue = deps.queue()
    try:
        if status is JobStatus.COMPLETED:
            await queue.change_status(
                queue_task_id, status, expected, result=result, agent_id=agent_id
            )
        else:
            await queue.change_status(queue_task_id, status, expected, error=error)
    except TaskConflict as exc:
        return None if exc.current_status == status else str(exc)
    except (TaskNotFound, QueueError) as exc:
        return str(exc)
    return None


class QueueSide(Protocol):
    """Where a job's take and status reports go."""

    async def take(self, queue_task_id: str) -> bool: ...

    async def report(
        self,
        queue_task_id: str,
        status: JobStatus,
        expected: str,
        *,
        result: object = None,
        agent_id: str | None = None,
        error: str | None = None,
    ) -> str | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _RemoteQueue:
    deps: Deps

    async def take(self, queue_task_id: str) -> bool:
        return await self.deps.queue().take(queue_task_id)

    async def report(
        self,
        queue_task_id: str,
        status: JobStatus,
        expected: str,
        *,
        result: object = None,
        agent_id: str | None = None,
        error: str | None = None,
    ) -> str | None:
        return await report_status(
            self.deps,
            queue_task_id,
            status,
            expected,
            result=result,
            agent_id=agent_id,
            error=error,
        )


class _NoQueue:
    """A workflow's step job: always "taken", every report "accepted" at once; the queue never
    hears of it (its parent's run reports the workflow as a whole)."""

    async def take(self, queue_task_id: str) -> bool:
        return True

    async def report(
        self,
        queue_task_id: str,
        status: JobStatus,
        expected: str,
        *,
        result: object = None,
        agent_id: str | None = None,
        error: str | None = None,
    ) -> str | None:
        return None


def queue_side(deps: Deps, spec: JobSpec) -> QueueSide:
    """The one place a step job is told apart from a queue task: plan, take, race and finish
    are the same services for both; only what they say to the queue differs."""
    return _NoQueue() if spec.is_step else _RemoteQueue(deps)
