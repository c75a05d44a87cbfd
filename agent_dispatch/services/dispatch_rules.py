"""Which policy, strategy and ranking inputs a job gets: settings, category rules, the task.

Precedence: the task's own resultStrategy, then the category's rule, then the global
setting. Planning, the race and finishing all ask here, so they never disagree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Mapping

from agent_dispatch.db.agent_repository import stats_of
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.hedging import HedgeRule, Policy
from agent_dispatch.domain.matching import MatchResult, match, match_learned
from agent_dispatch.domain.model import AgentProfile, JobSpec, ResultStrategy, StrategyKind
from agent_dispatch.domain.posterior import Evidence, Prior, posterior_mean
from agent_dispatch.domain.thompson import prior_of
from agent_dispatch.settings import CategoryRule, Settings


@dataclasses.dataclass(frozen=True, slots=True)
class JobRules:
    rule: HedgeRule
    strategy: ResultStrategy
    limit: int  # agents chosen for the job: started at once, or held in reserve for hedging

    def label(self) -> str:
        return f"{self.rule.policy.value}, {self.strategy.label()}"


def rules_for(s: Settings, spec: JobSpec) -> JobRules:
    cat = s.dispatch_rules.get(spec.category, CategoryRule())
    delay = cat.hedge_delay_ms if cat.hedge_delay_ms is not None else s.hedge_delay_ms
    rule = HedgeRule(
        Policy(cat.policy or s.dispatch_policy),
        delay,
        s.hedge_fallback_delay_ms,
        min_success=s.hedge_min_success,
    )
    strategy = spec.result_strategy or ResultStrategy(
        StrategyKind(cat.strategy or s.result_strategy), cat.quorum or s.quorum_size
    )
    if strategy.kind is StrategyKind.QUORUM:
        # Room to escalate on disagreement; never fewer agents than the quorum itself.
        limit = max(spec.max_agents or s.quorum_max_agents, strategy.quorum)
    else:
        limit = spec.max_agents or s.max_agents_per_job
    return JobRules(rule, strategy, limit)


def failure_cost_ms(s: Settings) -> float:
    return float(
        s.ranking_failure_cost_ms
        if s.ranking_failure_cost_ms is not None
        else s.default_agent_timeout
    )


def rng_for(s: Settings, job_id: str) -> random.Random:
    """Seeded per job when a seed is set (repeatable tests and demos), else from the OS."""
    return (
        random.Random(f"{s.ranking_seed}:{job_id}")
        if s.ranking_seed is not None
        else random.Random()
    )


def rank_for_job(
    uow: UnitOfWork,
    s: Settings,
    spec: JobSpec,
    job_id: str,
    profiles: list[AgentProfile],
    limit: int,
    now: dt.datetime,
    evidence: Mapping[str, Evidence] | None = None,
    explain: int | None = None,
) -> MatchResult:
    """Rank with the configured ranking; `evidence` when the caller loaded it already;
    `explain`: how many ranked agents get a written Decision (None: all)."""
    if s.ranking == "classic":
        return match(spec, profiles, limit)
    if evidence is None:
        evidence = uow.agents.evidence(spec.category, (p.id for p in profiles))
    return match_learned(
        spec,
        profiles,
        limit,
        evidence,
        rng_for(s, job_id),
        explore=s.ranking_explore,
        failure_cost_ms=failure_cost_ms(s),
        now_s=now.timestamp(),
        half_life_s=s.ranking_half_life_seconds,
        explain=explain,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RaceInputs:
    """Per-agent numbers the race plan needs: hedge delay basis and success chance."""

    delay_basis_ms: dict[str, float | None]
    success_p: dict[str, float]


def race_inputs(
    uow: UnitOfWork, s: Settings, category: str, agent_ids: list[str], now: dt.datetime
) -> RaceInputs:
    evidence = uow.agents.evidence(category, agent_ids)
    delays: dict[str, float | None] = {}
    chance: dict[str, float] = {}
    for agent_id in agent_ids:
        ev = evidence.get(agent_id)
        agent = uow.agents.get(agent_id)
        prior = prior_of(stats_of(agent)) if agent else Prior()
        ev = (ev or Evidence()).decayed(now.timestamp(), s.ranking_half_life_seconds)
        delays[agent_id] = ev.latency_quantile_ms(s.hedge_quantile)
        chance[agent_id] = posterior_mean(ev, prior)
    return RaceInputs(delays, chance)
