"""Planning: match and rank agents for a leased job, or decide it must end or wait."""

from __future__ import annotations

import dataclasses

from agent_dispatch.db.job_repository import spec_of
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lifecycle import PlanKind, precheck
from agent_dispatch.domain.matching import Decision
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.dispatch_rules import rank_for_job, rules_for
from agent_dispatch.services.intake import Claim


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    kind: PlanKind
    decisions: tuple[Decision, ...] = ()
    summary: str = ""
    busy: int = 0  # fitting agents that are full now: worth waiting for


async def plan_job(deps: Deps, claim: Claim) -> Plan:
    """Match and rank agents (domain rules) and record why each was chosen or excluded."""
    s = deps.settings

    def work(uow: UnitOfWork) -> Plan:
        now = utcnow()
        job = uow.jobs.get_leased(claim.lease)
        spec = spec_of(job)
        ending = precheck(spec, JobStatus(job.status), job.attempts, s.job_max_attempts, now)
        if ending is not None:
            return Plan(ending[0], summary=ending[1])
        rules = rules_for(s, spec)
        profiles = uow.agents.profiles(now)
        result = rank_for_job(uow, s, spec, job.id, profiles, rules.limit, now)
        summary = result.summary + (f" ({rules.label()})" if result.chosen else "")
        uow.jobs.note_plan(claim.lease, summary, now)
        kind = PlanKind.DISPATCH if result.chosen else PlanKind.UNSERVED
        return Plan(kind, result.decisions, summary, result.busy)

    return await in_transaction(deps, work)


async def release_job(deps: Deps, claim: Claim, reason: str) -> None:
    """Leave a job for a later run (no eligible agent now); it stays OPEN on the queue."""
    await in_transaction(
        deps,
        lambda uow: uow.jobs.release(claim.lease, match_summary=reason, updated_at=utcnow()),
    )
