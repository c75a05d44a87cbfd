"""Planning: match and rank agents for a leased job, or decide it must end or wait."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from agent_dispatch.db.agent_repository import Pool, profile_of
from agent_dispatch.db.engine import is_sqlite
from agent_dispatch.db.job_repository import spec_of
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import LeaseLost
from agent_dispatch.domain.lifecycle import PlanKind, precheck
from agent_dispatch.domain.matching import (
    NAME_ALL_UP_TO,
    NEXT_FEW,
    NOT_SCORED,
    Decision,
    MatchResult,
    exclusion,
    unserved_by,
)
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.dispatch_rules import JobRules, rank_for_job, rules_for
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.plan_batching import batcher_for
from agent_dispatch.settings import Settings


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    kind: PlanKind
    # Bounded: the chosen agents, the next few and a few excluded (MatchResult.bounded).
    decisions: tuple[Decision, ...] = ()
    summary: str = ""
    busy: int = 0  # fitting agents that are full now: worth waiting for
    exclusions: Mapping[str, int] = dataclasses.field(default_factory=dict)  # agents per rule


async def plan_job(deps: Deps, claim: Claim) -> Plan:
    """Match and rank agents (domain rules) and record why each was chosen or excluded.

    Plans asked for at the same time (a run plans up to JOB_CONCURRENCY jobs at once) share
    one transaction (`plan_batching`); each job's Plan is what `plan_jobs` decides for it
    alone, and a failure (its lease lost, a bad row) fails that job alone."""
    # SQLite runs one transaction at a time: a second batch would only wait for the first.
    one_at_a_time = is_sqlite(deps.settings.effective_database_url)
    batcher = batcher_for(deps, plan_jobs, in_flight=1 if one_at_a_time else 2)
    plan = await batcher.load(claim)
    if plan.kind is PlanKind.UNSERVED and plan.busy:
        # The run keeps the job and waits for a busy agent (up to CAPACITY_WAIT_SECONDS): say
        # why now. Planning writes nothing otherwise (plan_jobs); a release would say it.
        await in_transaction(
            deps, lambda uow: uow.jobs.note_plan(claim.lease, plan.summary, utcnow())
        )
    return plan


async def plan_jobs(deps: Deps, claims: Sequence[Claim]) -> list[Plan | Exception]:
    """Plan many leased jobs in one transaction: one lease check, their pools in one query
    where the dialect allows, one commit. Each job's entry is its Plan, or the exception that
    failed it (LeaseLost, ...). Should the transaction fail as a whole (a statement the
    database refused), each job is planned again on its own.

    Planning writes nothing: the step that acts on a plan notes its summary on the job in a
    write it makes anyway (the take with the attempt it counts, the release of an unserved
    job, the end of an expired or spent one); only a job left waiting for a busy agent is
    noted at once (`plan_job`). A plan's own UPDATE and the WAL flush of its commit cost a
    tenth of planning's throughput (benchmarks/matching_scale.py)."""
    s = deps.settings
    try:
        return await in_transaction(deps, lambda uow: _plan_batch(uow, s, claims))
    except Exception as exc:
        if len(claims) == 1:
            return [exc]
    return [(await plan_jobs(deps, [claim]))[0] for claim in claims]


def scored_at_most(s: Settings, limit: int) -> int:
    """How many admitted agents a job scores (see Settings.agents_scored_per_job)."""
    if s.agents_scored_per_job is not None:
        return max(s.agents_scored_per_job, limit)
    return max(20, 10 * limit)


def _plan_batch(uow: UnitOfWork, s: Settings, claims: Sequence[Claim]) -> list[Plan | Exception]:
    now = utcnow()
    jobs = uow.jobs.leased_many([c.lease for c in claims])
    out: list[Plan | Exception] = []
    todo: list[tuple[int, Claim, JobSpec, JobRules]] = []
    for i, claim in enumerate(claims):
        job = jobs.get(claim.job_id)
        try:
            if job is None:
                raise LeaseLost(claim.job_id)
            spec = spec_of(job)
            ending = precheck(spec, JobStatus(job.status), job.attempts, s.job_max_attempts, now)
            rules = rules_for(s, spec)
        except Exception as exc:
            out.append(exc)
            continue
        if ending is not None:
            out.append(Plan(ending[0], summary=ending[1]))
            continue
        out.append(Plan(PlanKind.UNSERVED))  # a placeholder, replaced below
        todo.append((i, claim, spec, rules))
    # Only agents the record-based rules admit leave the database (indexed prefilter), the
    # first few in a cheap order when there are more; the domain's rules judge each again.
    pools = uow.agents.pools(
        [spec for _, _, spec, _ in todo], now, [scored_at_most(s, r.limit) for *_, r in todo]
    )
    fleet = Fleet(uow, larger=any(p.admitted > NAME_ALL_UP_TO for p in pools))
    for (i, claim, spec, rules), pool in zip(todo, pools, strict=True):
        try:
            out[i] = _plan_one(uow, s, claim.job_id, spec, rules, pool, fleet, now)
        except Exception as exc:
            out[i] = exc
    return out


class Fleet:
    """Whether the fleet is small enough to explain agent by agent: asked at most once per
    batch, and only when a job's pool is that small and no pool in the batch was larger
    (more candidates than that: no need to ask)."""

    def __init__(self, uow: UnitOfWork, larger: bool) -> None:
        self.uow = uow
        self._small: bool | None = False if larger else None

    def small(self, candidates: int) -> bool:
        if candidates > NAME_ALL_UP_TO:
            return False
        if self._small is None:
            self._small = self.uow.agents.is_small_fleet()
        return self._small


def _plan_one(
    uow: UnitOfWork,
    s: Settings,
    job_id: str,
    spec: JobSpec,
    rules: JobRules,
    pool: Pool,
    fleet: Fleet,
    now: dt.datetime,
) -> Plan:
    candidates = pool.agents
    small = fleet.small(len(candidates))
    # A small fleet keeps every decision; a larger one what `bounded` keeps, written alone.
    explain = None if small else rules.limit + NEXT_FEW
    result = rank_for_job(
        uow, s, spec, job_id, candidates, rules.limit, now, pool.evidence, explain
    )
    if result.chosen:
        if small:
            result = with_the_rest(uow, spec, result, now)
        summary = f"{result.summary} ({rules.label()})"
        kind = PlanKind.DISPATCH
    else:
        result = dataclasses.replace(unserved(uow, spec, now, small), busy=result.busy)
        summary, kind = result.summary, PlanKind.UNSERVED
    excluded = dict(result.excluded)
    if result.chosen and pool.admitted > len(candidates):
        # The admitted agents past the cut (an unserved job's explanation judged them all).
        excluded[NOT_SCORED] = pool.admitted - len(candidates)
    kept = result.decisions if small else result.bounded()
    return Plan(kind, kept, summary, result.busy, excluded)


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
    """Why nobody can take the job (matching.unserved_by), judged against `judged_pool`."""
    return unserved_by(spec, *uow.agents.judged_pool(spec.category, now, small))


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
    not_scored: int = 0  # admitted agents that attempt left unscored (a bounded pool)

    def lines(self) -> list[str]:
        now = f"excluded now by rule {self.rule!r}: {self.reason}" if self.rule else "eligible now"
        out = [f"why not {self.agent}: {now}"]
        if self.attempt is None:
            out.append("  no attempt yet")
        elif self.kept is None:
            out.append(f"  attempt {self.attempt}: neither chosen nor among the next few it kept")
            if self.not_scored:
                out.append(
                    f"  ({self.not_scored} admitted agents were not scored: it scored those "
                    "with room and the best reputation first)"
                )
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
        (latest.exclusions or {}).get(NOT_SCORED, 0) if latest else 0,
    )


async def release_job(deps: Deps, claim: Claim, reason: str) -> None:
    """Leave a job for a later run (no eligible agent now); it stays OPEN on the queue."""
    await in_transaction(
        deps,
        lambda uow: uow.jobs.release(claim.lease, match_summary=reason, updated_at=utcnow()),
    )
