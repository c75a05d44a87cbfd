"""Job tasks: store and lease, plan (match and rank), take on the queue, expire, release."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.wiring import get_runtime
from clients.errors import QueueError
from clients.queue import RejectedItem
from db.distribution_repository import NewDistribution
from db.job_repository import spec_of
from db.models import Job
from db.types import utcnow
from db.uow import UnitOfWork
from domain.lease import Lease, LeaseLost
from domain.matching import Decision, match
from domain.model import JobSpec
from domain.statuses import JobStatus
from services.intake import store_each
from tasks import events
from tasks.dbio import in_transaction
from tasks.queue_io import Incoming, report_status


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """A job this run holds the lease on."""

    lease: Lease
    job_id: str
    spec: JobSpec
    status: JobStatus  # when claimed: OPEN for new jobs, DISTRIBUTED/IN_PROGRESS when rescued


CAPACITY_GONE = "the chosen agents filled up before assignment"


class PlanKind(enum.StrEnum):
    DISPATCH = "dispatch"
    EXPIRED = "expired"
    UNSERVED = "unserved"  # no eligible agent: left OPEN on the queue
    SPENT = "spent"  # a rescued job whose attempts are used up


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    kind: PlanKind
    decisions: tuple[Decision, ...] = ()
    summary: str = ""
    busy: int = 0  # fitting agents that are full now: worth waiting for


def _claims(uow: UnitOfWork, leases: list[Lease]) -> list[Claim]:
    out = []
    for lease in leases:
        job = uow.jobs.get_leased(lease)
        out.append(Claim(lease, job.id, spec_of(job), JobStatus(job.status)))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Intake:
    claims: list[Claim]
    refused: tuple[RejectedItem, ...]  # items the database would not hold: reject them


@task(name="store-and-lease", cache_policy=NO_CACHE)
async def intake_jobs(incoming: tuple[Incoming, ...], limit: int) -> Intake:
    """Store each queue task once (idempotent) and lease the OPEN ones nobody else holds.

    Each item is stored in a savepoint of its own: one the database refuses is returned in
    `refused` and its neighbours are stored and leased as usual.
    """
    rt = get_runtime()

    def work(uow: UnitOfWork) -> Intake:
        refused = store_each(uow, ((i.spec, i.created_at) for i in incoming))
        out = {r.queue_task_id for r in refused}
        rejected = tuple(RejectedItem(r.queue_task_id, r.reason) for r in refused)
        # Offer every listed task and cap the claim instead: the first N may be held by others.
        ids = [i.spec.queue_task_id for i in incoming if i.spec.queue_task_id not in out]
        if not ids or limit <= 0:
            return Intake([], rejected)
        leases = uow.jobs.claim_open(
            ids, rt.worker_name, rt.settings.job_lease_seconds, utcnow(), limit=limit
        )
        return Intake(_claims(uow, leases), rejected)

    return await in_transaction(work)


@task(name="lease-rescued-jobs", cache_policy=NO_CACHE)
async def claim_rescued(limit: int) -> list[Claim]:
    """Lease taken jobs the sweep handed back, to dispatch them again."""
    rt = get_runtime()

    def work(uow: UnitOfWork) -> list[Claim]:
        leases = uow.jobs.claim_rescued(
            rt.worker_name, rt.settings.job_lease_seconds, utcnow(), limit
        )
        return _claims(uow, leases)

    return await in_transaction(work)


@task(name="plan", cache_policy=NO_CACHE, task_run_name="plan {claim.spec.queue_task_id} #{round}")
async def plan_job(claim: Claim, round: int = 1) -> Plan:
    """Match and rank agents (domain core) and record why each was chosen or excluded."""
    settings = get_runtime().settings

    def work(uow: UnitOfWork) -> Plan:
        now = utcnow()
        job = uow.jobs.get_leased(claim.lease)
        spec = spec_of(job)
        if spec.is_expired(now):
            return Plan(
                PlanKind.EXPIRED, summary=f"expired at {spec.expires_at:%Y-%m-%d %H:%M:%S}Z"
            )
        if job.status != JobStatus.OPEN and job.attempts >= settings.job_max_attempts:
            return Plan(PlanKind.SPENT, summary=f"{job.attempts} attempts spent")
        limit = spec.max_agents or settings.max_agents_per_job
        result = match(spec, uow.agents.profiles(now), limit)
        job.match_summary = result.summary
        kind = PlanKind.DISPATCH if result.chosen else PlanKind.UNSERVED
        return Plan(kind, result.decisions, result.summary, result.busy)

    return await in_transaction(work)


@dataclasses.dataclass(frozen=True, slots=True)
class Taken:
    """A job taken on the queue, with its distribution and agent assignments."""

    claim: Claim
    distribution: NewDistribution
    queue_status: str


@task(name="take", cache_policy=NO_CACHE, task_run_name="take {claim.spec.queue_task_id}")
async def take_job(claim: Claim, plan: Plan, flow_run_id: str | None) -> Taken | str:
    """Reserve the chosen agents, take the task on the queue and move the job IN_PROGRESS.

    Returns a one-line reason instead when the job could not be taken (409, capacity gone).
    """
    queue = get_runtime().queue()
    logger = get_run_logger()
    qid = claim.spec.queue_task_id

    def reserve(uow: UnitOfWork) -> NewDistribution:
        return uow.distributions.create(claim.lease, plan.decisions, utcnow(), flow_run_id)

    dist = await in_transaction(reserve)
    for a in dist.assignments:
        events.agent_status_changed(
            claim.job_id,
            qid,
            a.agent_id,
            a.agent_name,
            "ASSIGNED",
            distribution_id=dist.distribution_id,
            rank=a.rank,
        )
    if not dist.assignments:
        await in_transaction(lambda uow: _abandon(uow, claim, dist.distribution_id, release=False))
        return CAPACITY_GONE
    queue_status = claim.status.value
    if claim.status is JobStatus.OPEN:
        await _ensure_held(claim.lease)  # a worker that lost its lease must not touch the queue
        try:
            taken = await queue.take(qid)
        except QueueError:
            # The take may have reached the queue before the error: keep the job leased but
            # expired, so the sweep asks the queue and either releases or rescues it.
            await in_transaction(lambda uow: _leave_to_sweep(uow, claim, dist.distribution_id))
            raise
        if not taken:
            # Maybe another consumer, maybe one of our own workers that took it and died:
            # undo the reservation and let the lease run out, so the sweep asks the queue.
            await in_transaction(lambda uow: _leave_to_sweep(uow, claim, dist.distribution_id))
            logger.info("%s was taken elsewhere (409); left for the sweep to reconcile", qid)
            return "taken by another consumer (409)"
        queue_status = JobStatus.DISTRIBUTED.value

        def distributed(uow: UnitOfWork) -> None:
            uow.jobs.transition(
                claim.lease, JobStatus.DISTRIBUTED, utcnow(), queue_status="DISTRIBUTED"
            )

        await in_transaction(distributed)
        events.job_status_changed(claim.job_id, qid, "DISTRIBUTED", attempt=dist.attempt)
    if queue_status == JobStatus.DISTRIBUTED.value:
        await _ensure_held(claim.lease)
        problem = await report_status(qid, "IN_PROGRESS", "DISTRIBUTED")
        if problem is None:
            queue_status = JobStatus.IN_PROGRESS.value
        else:
            logger.warning("queue not told IN_PROGRESS for %s: %s", qid, problem)

        def in_progress(uow: UnitOfWork) -> None:
            job = uow.jobs.get_leased(claim.lease)
            if job.status != JobStatus.IN_PROGRESS:
                uow.jobs.transition(
                    claim.lease, JobStatus.IN_PROGRESS, utcnow(), queue_status=queue_status
                )

        await in_transaction(in_progress)
        events.job_status_changed(
            claim.job_id, qid, "IN_PROGRESS", agents=[a.agent_name for a in dist.assignments]
        )
    return Taken(claim, dist, queue_status)


def _leave_to_sweep(uow: UnitOfWork, claim: Claim, distribution_id: str) -> None:
    """Undo the reservation and end the lease now, keeping its token: the sweep looks next."""
    _abandon(uow, claim, distribution_id, release=False)
    uow.jobs.expire_lease(claim.lease, utcnow())


async def _ensure_held(lease: Lease) -> None:
    """Raise LeaseLost unless this run still holds the job (checked before each queue write)."""
    if not await in_transaction(lambda uow: uow.jobs.holds(lease)):
        raise LeaseLost(lease.job_id)


def _abandon(uow: UnitOfWork, claim: Claim, distribution_id: str, *, release: bool) -> None:
    """Undo a reservation: the distribution and its rows go; the lease is kept or released."""
    uow.distributions.discard(distribution_id)
    job = uow.jobs.get_leased(claim.lease)
    job.attempts = max(job.attempts - 1, 0)
    if release:
        uow.jobs.release(claim.lease)


@task(
    name="end-unstarted", cache_policy=NO_CACHE, task_run_name="{status} {claim.spec.queue_task_id}"
)
async def end_job(claim: Claim, status: JobStatus, reason: str) -> str | None:
    """End a job that no agent will work on (EXPIRED, or FAILED when attempts are spent)."""
    qid = claim.spec.queue_task_id

    def load(uow: UnitOfWork) -> str:
        job: Job = uow.jobs.get_leased(claim.lease)
        return job.queue_status or job.status

    expected = await in_transaction(load)

    def finish(uow: UnitOfWork) -> None:
        # The fenced local ending comes first: a worker that lost its lease fails here and
        # never reaches the queue; if the report below fails, the sweep's outbox resends it.
        uow.jobs.transition(claim.lease, status, utcnow(), error=reason, queue_status=expected)

    await in_transaction(finish)
    events.job_status_changed(claim.job_id, qid, status.value, error=reason)
    problem = await report_status(qid, status.value, expected, error=reason)
    if problem is None:
        await in_transaction(lambda uow: uow.jobs.mark_queue_status(claim.job_id, status))
    return problem


@task(name="release", cache_policy=NO_CACHE, task_run_name="release {claim.spec.queue_task_id}")
async def release_job(claim: Claim, reason: str) -> None:
    """Leave a job for a later run (no eligible agent now); it stays OPEN on the queue."""

    def work(uow: UnitOfWork) -> None:
        job = uow.jobs.get_leased(claim.lease)
        job.match_summary = reason
        job.updated_at = utcnow()
        uow.jobs.release(claim.lease)

    await in_transaction(work)


def deadline_for(spec: JobSpec, default_timeout_ms: int, now: dt.datetime) -> dt.datetime:
    """When we stop waiting for an agent: its time limit, or the job's expiry if sooner."""
    deadline = now + dt.timedelta(milliseconds=spec.timeout_ms or default_timeout_ms)
    if spec.expires_at is not None and spec.expires_at < deadline:
        return spec.expires_at
    return deadline
