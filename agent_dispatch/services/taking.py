"""Taking: reserve the chosen agents, take the task on the queue, move the job IN_PROGRESS."""

from __future__ import annotations

import dataclasses
import enum
import logging

from agent_dispatch.clients.errors import QueueError
from agent_dispatch.db.distribution_repository import NewDistribution
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.planning import Plan
from agent_dispatch.services.queue_io import queue_side

log = logging.getLogger(__name__)


class NotTaken(enum.StrEnum):
    """Why a planned job was not taken; the job is left as the reason says."""

    CAPACITY_GONE = "the chosen agents filled up before assignment"  # still leased: re-plan
    TAKEN_ELSEWHERE = "taken by another consumer (409)"  # left for the sweep to reconcile


RANKING_DETAIL = ("score", "low", "high", "expected_ms", "exploration")


@dataclasses.dataclass(frozen=True, slots=True)
class Taken:
    """A job taken on the queue, with its distribution and agent assignments."""

    claim: Claim
    distribution: NewDistribution
    queue_status: JobStatus  # what the queue holds now (IN_PROGRESS unless that report failed)


async def take_job(
    deps: Deps, claim: Claim, plan: Plan, flow_run_id: str | None
) -> Taken | NotTaken:
    """Reserve agents under row locks, then PATCH the queue; every write fenced by the lease."""
    qid = claim.spec.queue_task_id
    dist = await in_transaction(
        deps,
        lambda uow: uow.distributions.create(
            claim.lease, plan.decisions, utcnow(), flow_run_id, plan.exclusions, plan.summary
        ),
    )
    chosen = {d.agent_id: d.as_dict() for d in plan.decisions if d.chosen}
    for a in dist.assignments:
        # The learned ranking's numbers ride along: score, interval, expected time, exploration.
        shown = {k: v for k, v in chosen.get(a.agent_id, {}).items() if k in RANKING_DETAIL}
        deps.events.agent_changed(
            claim.job_id,
            qid,
            a.agent_id,
            a.agent_name,
            "ASSIGNED",
            distribution_id=dist.distribution_id,
            rank=a.rank,
            **shown,
        )
    if not dist.assignments:
        await in_transaction(
            deps, lambda uow: uow.distributions.discard(claim.lease, dist.distribution_id)
        )
        return NotTaken.CAPACITY_GONE
    queue_status = claim.status
    if claim.status is JobStatus.OPEN:
        # A worker that lost its lease must not touch the queue. Checked once, before the
        # take: the IN_PROGRESS report follows it at once, and the fenced write after both
        # catches a lease lost meanwhile (the sweep then reconciles with the queue).
        await _ensure_held(deps, claim.lease)
        try:
            taken = await queue_side(deps, claim.spec).take(qid)
        except QueueError:
            # The take may have reached the queue before the error: keep the job leased but
            # expired, so the sweep asks the queue and either releases or rescues it.
            await in_transaction(deps, lambda uow: _leave_to_sweep(uow, claim, dist))
            raise
        if not taken:
            # Maybe another consumer, maybe one of our own workers that took it and died:
            # undo the reservation and let the lease run out, so the sweep asks the queue.
            await in_transaction(deps, lambda uow: _leave_to_sweep(uow, claim, dist))
            log.info("%s was taken elsewhere (409); left for the sweep to reconcile", qid)
            return NotTaken.TAKEN_ELSEWHERE
        queue_status = JobStatus.DISTRIBUTED
    if queue_status is not JobStatus.DISTRIBUTED:
        return Taken(claim, dist, queue_status)  # a rescued job already IN_PROGRESS
    problem = await queue_side(deps, claim.spec).report(
        qid, JobStatus.IN_PROGRESS, queue_status.value
    )
    if problem is None:
        queue_status = JobStatus.IN_PROGRESS
    else:
        log.warning("queue not told IN_PROGRESS for %s: %s", qid, problem)
    # Both moves in one transaction, after both PATCHes: a run that dies between the take and
    # this write leaves an expiring lease, and the sweep asks the queue (as it always did).
    was_open = claim.status is JobStatus.OPEN

    def in_progress(uow: UnitOfWork) -> None:
        now = utcnow()
        if was_open:
            uow.jobs.transition(
                claim.lease, JobStatus.DISTRIBUTED, now, queue_status=JobStatus.DISTRIBUTED.value
            )
        elif uow.jobs.get_leased(claim.lease).status == JobStatus.IN_PROGRESS:
            return  # a rescued job that is IN_PROGRESS here already
        uow.jobs.transition(
            claim.lease, JobStatus.IN_PROGRESS, now, queue_status=queue_status.value
        )

    await in_transaction(deps, in_progress)
    if was_open:
        deps.events.job_changed(claim.job_id, qid, "DISTRIBUTED", attempt=dist.attempt)
    deps.events.job_changed(
        claim.job_id, qid, "IN_PROGRESS", agents=[a.agent_name for a in dist.assignments]
    )
    return Taken(claim, dist, queue_status)


def _leave_to_sweep(uow: UnitOfWork, claim: Claim, dist: NewDistribution) -> None:
    """Undo the reservation and end the lease now, keeping its token: the sweep looks next."""
    uow.distributions.discard(claim.lease, dist.distribution_id)
    uow.jobs.expire_lease(claim.lease, utcnow())


async def _ensure_held(deps: Deps, lease: Lease) -> None:
    """Raise LeaseLost unless this run still holds the job (checked before the queue take)."""
    if not await in_transaction(deps, lambda uow: uow.jobs.holds(lease)):
        raise LeaseLost(lease.job_id)
