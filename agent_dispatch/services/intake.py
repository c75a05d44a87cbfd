"""Intake: store queue tasks as jobs (idempotent) and lease the ones this run will work on."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from agent_dispatch.clients.queue import RejectedItem
from agent_dispatch.db.job_repository import spec_of
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import Lease
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.queue_io import Incoming


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """A job this run holds the lease on."""

    lease: Lease
    job_id: str
    spec: JobSpec
    status: JobStatus  # when claimed: OPEN for new jobs, DISTRIBUTED/IN_PROGRESS when rescued


def _claims(uow: UnitOfWork, leases: Sequence[Lease]) -> list[Claim]:
    out = []
    for lease in leases:
        job = uow.jobs.get_leased(lease)
        out.append(Claim(lease, job.id, spec_of(job), JobStatus(job.status)))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Intake:
    claims: list[Claim]
    refused: tuple[RejectedItem, ...]  # items the database would not hold: reject them


async def store_and_lease(deps: Deps, incoming: Sequence[Incoming], limit: int) -> Intake:
    """Store each queue task once (idempotent) and lease up to `limit` OPEN ones nobody else
    holds. An item the database refuses is returned in `refused`; its neighbours go on."""
    s = deps.settings

    def work(uow: UnitOfWork) -> Intake:
        refused = uow.jobs.intake_each((i.spec, i.created_at) for i in incoming)
        out = {task_id for task_id, _ in refused}
        rejected = tuple(RejectedItem(task_id, reason) for task_id, reason in refused)
        # Offer every listed task and cap the claim instead: the first N may be held by others.
        ids = [i.spec.queue_task_id for i in incoming if i.spec.queue_task_id not in out]
        if not ids or limit <= 0:
            return Intake([], rejected)
        leases = uow.jobs.claim_open(
            ids, deps.worker_name, s.job_lease_seconds, utcnow(), limit=limit
        )
        return Intake(_claims(uow, leases), rejected)

    return await in_transaction(deps, work)


async def lease_rescued(deps: Deps, limit: int) -> list[Claim]:
    """Lease taken jobs the sweep handed back, to dispatch them again."""
    s = deps.settings

    def work(uow: UnitOfWork) -> list[Claim]:
        leases = uow.jobs.claim_rescued(deps.worker_name, s.job_lease_seconds, utcnow(), limit)
        return _claims(uow, leases)

    return await in_transaction(deps, work)
