"""Planning: match and rank agents for a leased job, or decide it must end or wait."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

from agent_dispatch.db.agent_repository import profile_of
from agent_dispatch.db.job_repository import spec_of
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lifecycle import PlanKind, precheck
from agent_dispatch.domain.matching import Decision, Exclusion, MatchResult, exclusion, match
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.dispatch_rules import rank_for_job, rules_for
from agent_dispatch.services.intake import Claim

# Fleets this small are explained agent by agent, every agent kept in the stored decisions.
NAME_ALL_UP_TO = 20


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    kind: PlanKind
    # Bounded: the chosen agents, the next few and a few excluded (MatchResult.bounded).
    decisions: tuple[Decision, ...] = ()
    summary: str = ""
    busy: int = 0  # fitting agents that are full now: worth waiting for
    exclusions: Mapping[str, int] = dataclasses.field(default_factory=dict)  # agents per rule


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
        # Only agents the record-based rules admit leave the database (indexed prefilter);
        # the domain's rules judge each of them again, capacity included.
        candidates, evidence = uow.agents.pool(spec, now)
        result = rank_for_job(uow, s, spec, job.id, candidates, rules.limit, now, evidence)
        small = (  # more candidates than that: no need to ask
            len(candidates) <= NAME_ALL_UP_TO
            and uow.agents.count_up_to(NAME_ALL_UP_TO + 1) <= NAME_ALL_UP_TO
        )
        if result.chosen:
            if small:
                result = with_the_rest(uow, spec, result, now)
            summary = f"{result.summary} ({rules.label()})"
            kind = PlanKind.DISPATCH
        else:
            result = dataclasses.replace(unserved(uow, spec, now, small), busy=result.busy)
            summary, kind = result.summary, PlanKind.UNSERVED
        uow.jobs.note_plan(claim.lease, summary, now)
        kept = result.decisions if small else result.bounded()
        return Plan(kind, kept, summary, result.busy, result.excluded)

    return await in_transaction(deps, work)


def with_the_rest(
    uow: UnitOfWork, spec: JobSpec, result: MatchResult, now: dt.datetime
) -> MatchResult:
    """A small fleet is explained agent by agent, as before the prefilter: each agent it left
    out is judged by the domain's rules too."""
    extra, counts = [], dict(result.excluded)
    for agent in uow.agents.others((d.agent_id for d in result.decisions), now):
        found = exclusion(spec, agent)
        if found is not None:  # (None for one left out: admitted since, the next plan sees it)
            counts[found[0].value] = counts.get(found[0].value, 0) + 1
            extra.append(Decision(agent.id, agent.name, False, False, found[1]))
    return dataclasses.replace(result, decisions=result.decisions + tuple(extra), excluded=counts)


def unserved(uow: UnitOfWork, spec: JobSpec, now: dt.datetime, small: bool) -> MatchResult:
    """Why nobody can take the job, by rule: the agents listing its category are judged one by
    one (indexed, so bounded by the category's size); every other agent counts under the
    category rule, whatever else it breaks. A small fleet: every agent is judged."""
    if small:
        pool, outside = uow.agents.profiles(now), 0
    else:
        pool, outside = uow.agents.serving(spec.category, now)
    judged = match(spec, pool, 1)  # nothing fits (or it just freed up: the next plan sees it)
    counts = dict(judged.excluded)
    if outside:
        counts[Exclusion.CATEGORY.value] = counts.get(Exclusion.CATEGORY.value, 0) + outside
    excluded = tuple(d for d in judged.decisions if not d.eligible)
    return MatchResult((), excluded, judged.busy, counts)


@dataclasses.dataclass(frozen=True, slots=True)
class WhyNot:
    """One named agent judged against a job now by the domain's rules (`jobs show --why-not`),
    with what the job's latest attempt kept about it, if anything."""

    agent: str
    eligible: bool
    rule: str | None  # an Exclusion's value when excluded
    reason: str
    attempt: int | None = None
    kept: Mapping[str, object] | None = None  # the agent's stored decision in that attempt

    def lines(self) -> list[str]:
        now = f"excluded now by rule {self.rule!r}: {self.reason}" if self.rule else "eligible now"
        out = [f"why not {self.agent}: {now}"]
        if self.attempt is None:
            out.append("  no attempt yet")
        elif self.kept is None:
            out.append(f"  attempt {self.attempt}: neither chosen nor among the next few it kept")
        else:
            out.append(f"  attempt {self.attempt}: {self.kept['reason']}")
        return out


def why_not(uow: UnitOfWork, job_ref: str, agent_ref: str, now: dt.datetime) -> WhyNot | None:
    """None when there is no such job or agent (by id, prefix or queue task; by name or id)."""
    job = uow.jobs.find(job_ref)
    agent = uow.agents.get_by_name(agent_ref) or uow.agents.get(agent_ref)
    if job is None or agent is None:
        return None
    found = exclusion(spec_of(job), profile_of(agent, now))
    latest = job.distributions[-1] if job.distributions else None
    kept = (
        next((d for d in latest.decisions if d["agent_id"] == agent.id), None) if latest else None
    )
    return WhyNot(
        agent.name,
        found is None,
        found[0].value if found else None,
        found[1] if found else "eligible now",
        latest.attempt if latest else None,
        kept,
    )


async def release_job(deps: Deps, claim: Claim, reason: str) -> None:
    """Leave a job for a later run (no eligible agent now); it stays OPEN on the queue."""
    await in_transaction(
        deps,
        lambda uow: uow.jobs.release(claim.lease, match_summary=reason, updated_at=utcnow()),
    )
