"""Intake: store queue tasks as jobs (idempotent) and lease the ones this run will work on."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

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


async def store_and_lease(deps: Deps, incoming: Sequence[Incoming], limit: int) -> list[Claim]:
    """Store each queue task once and lease up to `limit` OPEN ones nobody else holds."""
    s = deps.settings

    def work(uow: UnitOfWork) -> list[Claim]:
        for item in incoming:
            uow.jobs.intake(item.spec, item.created_at)
        # Offer every listed task and cap the claim instead: the first N may be held by others.
        ids = [i.spec.queue_task_id for i in incoming] if limit > 0 else []
        if not ids:
            return []
        leases = uow.jobs.claim_open(
            ids, deps.worker_name, s.job_lease_seconds, utcnow(), limit=limit
        )
        return _claims(uow, leases)

    return await in_transaction(deps, work)


async def lease_rescued(deps: Deps, limit: int) -> list[Claim]:
    """Lease taken jobs the sweep handed back, to dispatch them again."""
    s = deps.settings

    def work(uow: UnitOfWork) -> list[Claim]:
        leases = uow.jobs.claim_rescued(deps.worker_name, s.job_lease_seconds, utcnow(), limit)
        return _claims(uow, leases)

    return await in_transaction(deps, work)
