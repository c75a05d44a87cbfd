"""The sweep's repairs after a lost worker: rescue jobs whose lease ran out, stop the agent
calls nobody waits for, and reconcile OPEN jobs left leased by a crash.

Every step is safe to run from several sweeps at once: rows are taken with SKIP LOCKED or
under a lease, and every write to a leased job presents its lease token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum

from agent_dispatch.clients.agent import AgentEndpoint
from agent_dispatch.clients.errors import QueueError, TaskNotFound
from agent_dispatch.db.sweep_repository import AbandonedCall
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.lifecycle import rescue_verdict
from agent_dispatch.domain.statuses import JOB_ACTIVE, JOB_TERMINAL, JobStatus, can_move_job
from agent_dispatch.services.deps import Deps, in_transaction

SWEEP_LEASE_SECONDS = 60  # how long a sweep holds a stale OPEN job while it asks the queue
CANCEL_TIMEOUT = 5.0  # a cancel is a courtesy to the agent: never wait long for it


class SweepAction(enum.StrEnum):
    """What the sweep did to one job (the values are what operators read in the summary)."""

    REQUEUED = "requeued"  # its worker lost the lease: handed back for another attempt
    EXPIRED = "EXPIRED"  # ended EXPIRED: its time ran out while its worker was lost
    FAILED = "FAILED"  # ended FAILED: its attempts are spent
    RELEASED = "released"  # stale OPEN job still OPEN on the queue: free to take again
    RESCUED = "rescued"  # stale OPEN job already taken on the queue: dispatched as rescued
    MIRRORED = "mirrored"  # stale OPEN job finished or gone on the queue: ours follows
    DEFERRED = "deferred"  # the queue could not be asked or told now; the next sweep retries
    SKIPPED = "skipped"  # another process took the job meanwhile
    REPORTED = "reported"  # the queue accepted the ending (or had it already)
    CONFLICT = "conflict"  # the queue holds another ending; ours cannot replace it
    GONE = "gone"  # the task is gone from the queue: nothing left to tell


@dataclasses.dataclass(frozen=True, slots=True)
class SweepLine:
    """What the sweep did to one job."""

    queue_task_id: str
    job_id: str
    action: SweepAction
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Rescued:
    lines: tuple[SweepLine, ...]
    ended_job_ids: tuple[str, ...]  # ended by the sweep: their report goes out right away
    calls: tuple[AbandonedCall, ...]  # still running at an agent: tell each one to stop


async def rescue_expired(deps: Deps, limit: int) -> Rescued:
    """Close the open agent rows of taken jobs with an expired lease, then requeue or end them."""
    s = deps.settings

    def work(uow: UnitOfWork) -> Rescued:
        now = utcnow()
        lines: list[SweepLine] = []
        ended: list[str] = []
        calls: list[AbandonedCall] = []
        for job in uow.sweep.lock_expired_active(now, limit):
            calls += uow.sweep.close_open_rows(
                job.id, now, s.default_agent_timeout, "the worker lost its lease; call abandoned"
            )
            verdict = rescue_verdict(job.expires_at, job.attempts, now, s.job_max_attempts)
            if verdict is None:
                uow.sweep.hand_back(job.id, job.lease_token or "")
                why = f"attempt {job.attempts} abandoned by {job.lease_owner}"
                lines.append(SweepLine(job.queue_task_id, job.id, SweepAction.REQUEUED, why))
                continue
            why = (
                "expired while its worker was lost"
                if verdict is JobStatus.EXPIRED
                else f"{job.attempts} attempts spent; the last worker lost its lease"
            )
            uow.jobs.transition_unleased(job.id, verdict, now, error=why)
            ended.append(job.id)
            lines.append(SweepLine(job.queue_task_id, job.id, SweepAction(verdict.value), why))
        return Rescued(tuple(lines), tuple(ended), tuple(calls))

    rescued = await in_transaction(deps, work)
    for line in rescued.lines:
        if line.job_id in rescued.ended_job_ids:  # announced after the commit, never before
            deps.events.job_changed(
                line.job_id, line.queue_task_id, line.action.value, error=line.detail
            )
    return rescued


async def stop_abandoned(deps: Deps, calls: tuple[AbandonedCall, ...]) -> int:
    """Tell agents to stop work nobody waits for any more; returns the cancels they confirmed.

    Best effort: an agent that cannot be reached has its call ended on our side already.
    """
    agents = deps.agents()

    async def one(c: AbandonedCall) -> bool:
        with contextlib.suppress(Exception):  # an unreadable token too: best effort
            token = await deps.agent_token(c.token_ref)
            endpoint = AgentEndpoint(c.agent_id, c.agent_name, c.url, token, c.protocol)
            return await agents.cancel(
                endpoint,
                job_id=c.queue_task_id,
                distribution_id=c.distribution_id,
                remote_task_id=c.remote_task_id,
                timeout=CANCEL_TIMEOUT,
            )
        return False

    return sum(await asyncio.gather(*(one(c) for c in calls)))


async def reconcile_stale_open(deps: Deps, limit: int) -> list[SweepLine]:
    """OPEN jobs left with an expired lease: ask the queue where each one really is."""
    owner = f"{deps.worker_name}:sweep"

    def lease(uow: UnitOfWork) -> list[tuple[Lease, str]]:
        leases = uow.sweep.lease_stale_open(owner, SWEEP_LEASE_SECONDS, utcnow(), limit)
        return [(ls, uow.jobs.get_leased(ls).queue_task_id) for ls in leases]

    return [await _reconcile(deps, ls, qid) for ls, qid in await in_transaction(deps, lease)]


async def _reconcile(deps: Deps, lease: Lease, qid: str) -> SweepLine:
    try:
        found: str | None = (await deps.queue().get_task(qid)).status
    except TaskNotFound:
        found = None
    except QueueError as exc:
        await in_transaction(deps, lambda uow: uow.jobs.expire_lease(lease, utcnow()))
        return SweepLine(qid, lease.job_id, SweepAction.DEFERRED, f"queue look-up failed: {exc}")

    def apply(uow: UnitOfWork) -> tuple[SweepLine, JobStatus | None]:
        now = utcnow()
        uow.jobs.get_leased(lease)
        uow.sweep.close_open_rows(
            lease.job_id,
            now,
            deps.settings.default_agent_timeout,
            "the worker was lost before the job ran",
        )
        if found == JobStatus.OPEN:
            uow.jobs.release(lease)
            return SweepLine(
                qid, lease.job_id, SweepAction.RELEASED, "still OPEN on the queue"
            ), None
        if found in JOB_ACTIVE:
            # Taken on the queue by us just before the crash: dispatch it as a rescued job.
            uow.jobs.transition(lease, JobStatus.DISTRIBUTED, now, queue_status=found)
            uow.jobs.release(lease)
            line = SweepLine(qid, lease.job_id, SweepAction.RESCUED, f"{found} on the queue")
            return line, JobStatus.DISTRIBUTED
        if found is None or found in JOB_TERMINAL:
            seen = found or JobStatus.CANCELLED.value
            why = f"the queue reports it {found}" if found else "the task is gone from the queue"
            target = JobStatus(seen)
            if not can_move_job(JobStatus.OPEN, target):
                target, why = JobStatus.CANCELLED, why + "; it was finished elsewhere"
            uow.jobs.transition(lease, target, now, queue_status=seen, error=why)
            line = SweepLine(qid, lease.job_id, SweepAction.MIRRORED, f"{target.value}: {why}")
            return line, target
        uow.jobs.expire_lease(lease, now)
        why = f"unknown queue status {found!r}"
        return SweepLine(qid, lease.job_id, SweepAction.DEFERRED, why), None

    try:
        line, moved_to = await in_transaction(deps, apply)
    except LeaseLost:
        why = "another process took the job meanwhile"
        return SweepLine(qid, lease.job_id, SweepAction.SKIPPED, why)
    if moved_to is not None:
        deps.events.job_changed(lease.job_id, qid, moved_to.value, reason=line.detail)
    return line
