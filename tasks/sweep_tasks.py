"""Sweep tasks: rescue jobs whose worker was lost, reconcile stale OPEN jobs, resend reports."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt

from prefect import task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.bootstrap import prefect_events as events
from agent_dispatch.clients.agent import AgentEndpoint
from agent_dispatch.clients.errors import QueueError, TaskConflict, TaskNotFound
from agent_dispatch.db.sweep_repository import (
    TERMINAL,
    AbandonedCall,
    SweepRepository,
    Unreported,
    rescue_verdict,
)
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.statuses import JobStatus, can_move_job
from agent_dispatch.tasks.dbio import in_transaction

SWEEP_LEASE_SECONDS = 60  # how long a sweep holds a stale OPEN job while it asks the queue
CANCEL_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class SweepLine:
    """What the sweep did to one job."""

    queue_task_id: str
    job_id: str
    action: str  # requeued, EXPIRED, FAILED, released, rescued, mirrored, reported, ...
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Rescued:
    lines: tuple[SweepLine, ...]
    ended_job_ids: tuple[str, ...]  # ended by the sweep: their report goes out right away
    calls: tuple[AbandonedCall, ...]


@task(name="rescue-expired-leases", cache_policy=NO_CACHE)
async def rescue_expired(limit: int) -> Rescued:
    """Close the open agent rows of taken jobs with an expired lease, then requeue or end them."""
    s = get_runtime().settings

    def work(uow: UnitOfWork) -> Rescued:
        sweep, now = SweepRepository(uow.session), utcnow()
        lines, ended, calls = [], [], []
        for job in sweep.lock_expired_active(now, limit):
            calls += sweep.close_open_rows(
                job.id, now, s.default_agent_timeout, "the worker lost its lease; call abandoned"
            )
            verdict = rescue_verdict(job, now, s.job_max_attempts)
            if verdict is None:
                sweep.hand_back(job.id, job.lease_token or "")
                lines.append(
                    SweepLine(
                        job.queue_task_id,
                        job.id,
                        "requeued",
                        f"attempt {job.attempts} abandoned by {job.lease_owner}",
                    )
                )
                continue
            why = (
                "expired while its worker was lost"
                if verdict is JobStatus.EXPIRED
                else f"{job.attempts} attempts spent; the last worker lost its lease"
            )
            uow.jobs.transition_unleased(job.id, verdict, now, error=why)
            ended.append(job.id)
            lines.append(SweepLine(job.queue_task_id, job.id, verdict.value, why))
        return Rescued(tuple(lines), tuple(ended), tuple(calls))

    rescued = await in_transaction(work)
    for line in rescued.lines:
        if line.action in TERMINAL:
            events.job_status_changed(
                line.job_id, line.queue_task_id, line.action, error=line.detail
            )
    return rescued


@task(name="stop-abandoned-calls", cache_policy=NO_CACHE)
async def stop_abandoned(calls: tuple[AbandonedCall, ...]) -> int:
    """Tell agents to stop work nobody waits for any more; returns the cancels they confirmed."""
    rt = get_runtime()

    async def one(c: AbandonedCall) -> bool:
        endpoint = AgentEndpoint(c.agent_id, c.agent_name, c.url, rt.agent_token(c.token_ref))
        with contextlib.suppress(Exception):
            return await rt.agents().cancel(
                endpoint,
                job_id=c.queue_task_id,
                distribution_id=c.distribution_id,
                remote_task_id=c.remote_task_id,
                timeout=CANCEL_TIMEOUT,
            )
        return False

    return sum(await asyncio.gather(*(one(c) for c in calls)))


@task(name="reconcile-stale-open", cache_policy=NO_CACHE)
async def reconcile_stale_open(limit: int) -> list[SweepLine]:
    """OPEN jobs left with an expired lease: ask the queue where each one really is."""
    rt = get_runtime()
    owner = f"{rt.worker_name}:sweep"

    def lease(uow: UnitOfWork) -> list[tuple[Lease, str]]:
        leases = SweepRepository(uow.session).lease_stale_open(
            owner, SWEEP_LEASE_SECONDS, utcnow(), limit
        )
        return [(ls, uow.jobs.get_leased(ls).queue_task_id) for ls in leases]

    return [await _reconcile(ls, qid) for ls, qid in await in_transaction(lease)]


async def _reconcile(lease: Lease, qid: str) -> SweepLine:
    s = get_runtime().settings
    try:
        found: str | None = (await get_runtime().queue().get_task(qid)).status
    except TaskNotFound:
        found = None
    except QueueError as exc:
        await in_transaction(lambda uow: SweepRepository(uow.session).expire_lease(lease, utcnow()))
        return SweepLine(qid, lease.job_id, "deferred", f"queue look-up failed: {exc}")

    def apply(uow: UnitOfWork) -> SweepLine:
        now = utcnow()
        uow.jobs.get_leased(lease)
        SweepRepository(uow.session).close_open_rows(
            lease.job_id, now, s.default_agent_timeout, "the worker was lost before the job ran"
        )
        if found == JobStatus.OPEN.value:
            uow.jobs.release(lease)
            return SweepLine(qid, lease.job_id, "released", "still OPEN on the queue")
        if found in (JobStatus.DISTRIBUTED.value, JobStatus.IN_PROGRESS.value):
            # Taken on the queue by us just before the crash: dispatch it as a rescued job.
            uow.jobs.transition(lease, JobStatus.DISTRIBUTED, now, queue_status=found)
            uow.jobs.release(lease)
            return SweepLine(qid, lease.job_id, "rescued", f"{found} on the queue")
        if found is None or found in TERMINAL:
            seen = found or JobStatus.CANCELLED.value
            why = f"the queue reports it {found}" if found else "the task is gone from the queue"
            target = JobStatus(seen)
            if not can_move_job(JobStatus.OPEN, target):
                target, why = JobStatus.CANCELLED, why + "; it was finished elsewhere"
            uow.jobs.transition(lease, target, now, queue_status=seen, error=why)
            return SweepLine(qid, lease.job_id, "mirrored", f"{target.value}: {why}")
        SweepRepository(uow.session).expire_lease(lease, now)
        return SweepLine(qid, lease.job_id, "deferred", f"unknown queue status {found!r}")

    try:
        return await in_transaction(apply)
    except LeaseLost:
        return SweepLine(qid, lease.job_id, "skipped", "another process took the job meanwhile")


@task(name="send-unreported", cache_policy=NO_CACHE)
async def send_unreported(
    job_ids: tuple[str, ...], settle_seconds: float, limit: int
) -> list[SweepLine]:
    """The outbox: tell the queue every ending it has not accepted yet."""
    since = utcnow() - dt.timedelta(seconds=settle_seconds)
    pending = await in_transaction(
        lambda uow: SweepRepository(uow.session).unreported(since, limit, job_ids)
    )
    return [await _send(u) for u in pending]


async def _send(u: Unreported) -> SweepLine:
    queue = get_runtime().queue()
    expected = u.expected

    async def mark(queue_status: str) -> None:
        await in_transaction(
            lambda uow: SweepRepository(uow.session).mark_reported(u.job_id, queue_status)
        )

    for _ in range(2):  # a second try when the queue had moved on to another live status
        try:
            if u.status == JobStatus.COMPLETED.value:
                await queue.change_status(
                    u.queue_task_id, u.status, expected, result=u.result, agent_id=u.agent_id
                )
            else:
                await queue.change_status(u.queue_task_id, u.status, expected, error=u.error)
        except TaskConflict as exc:
            now = exc.current_status
            if now == u.status:
                await mark(now)
                return SweepLine(u.queue_task_id, u.job_id, "reported", "the queue had it already")
            if now is not None and now not in TERMINAL and now != expected:
                expected = now
                continue
            if now in TERMINAL:
                await mark(now)  # the queue's ending stands; ours cannot replace it
            return SweepLine(u.queue_task_id, u.job_id, "conflict", str(exc))
        except TaskNotFound as exc:
            await mark(u.status)  # nothing left to tell
            return SweepLine(u.queue_task_id, u.job_id, "gone", str(exc))
        except QueueError as exc:  # the flow logs every line; the next sweep tries again
            return SweepLine(u.queue_task_id, u.job_id, "deferred", str(exc))
        await mark(u.status)
        return SweepLine(u.queue_task_id, u.job_id, "reported", f"{expected} -> {u.status}")
    return SweepLine(u.queue_task_id, u.job_id, "deferred", "the queue kept moving")
