"""Which agents may take a job, and why each candidate was chosen or excluded."""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Iterable, Mapping

from agent_dispatch.domain.breaker import CircuitState
from agent_dispatch.domain.model import AgentProfile, JobSpec
from agent_dispatch.domain.posterior import Evidence
from agent_dispatch.domain.ranking import rank_score
from agent_dispatch.domain.thompson import Candidate, prior_of, rank_candidates

# How many eligible-but-not-chosen agents a stored explanation keeps, best first.
NEXT_FEW = 5


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """One candidate's verdict for one job; stored so operators can read it later."""

    agent_id: str
    agent_name: str
    eligible: bool
    chosen: bool
    reason: str
    score: float | None = None
    rank: int | None = None
    # Learned ranking only: the success interval, expected time and whether sampling
    # (not the posterior mean) put the agent this high.
    low: float | None = None
    high: float | None = None
    expected_ms: float | None = None
    exploration: bool = False

    def as_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        if self.expected_ms is None:  # a classic decision keeps its original shape
            for key in ("low", "high", "expected_ms", "exploration"):
                del data[key]
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class MatchResult:
    chosen: tuple[AgentProfile, ...]
    decisions: tuple[Decision, ...]
    busy: int = 0  # agents that fit the job but are at max concurrency right now
    excluded: Mapping[str, int] = dataclasses.field(default_factory=dict)  # per Exclusion

    def bounded(self, next_few: int = NEXT_FEW) -> tuple[Decision, ...]:
        """What is worth storing: the chosen agents, the next few eligible ones and a few
        excluded ones (`excluded` counts them all); any other agent is explained on demand
        by re-running `exclusion` against the job (`jobs show --why-not`)."""
        chosen = [d for d in self.decisions if d.chosen]
        runners_up = [d for d in self.decisions if d.eligible and not d.chosen][:next_few]
        others = [d for d in self.decisions if not d.eligible][:next_few]
        return tuple(chosen + runners_up + others)

    @property
    def summary(self) -> str:
        if self.chosen:
            return "chose " + ", ".join(a.name for a in self.chosen)
        # Bounded at any fleet size: a few agents by name, then how many each rule excluded.
        named = [f"{d.agent_name}: {d.reason}" for d in self.decisions if not d.eligible]
        parts = named[:NEXT_FEW]
        if max(sum(self.excluded.values()), len(named)) > len(parts):
            by_rule = sorted(self.excluded.items(), key=lambda kv: (-kv[1], kv[0]))
            parts.append("by rule: " + ", ".join(f"{n} {rule}" for rule, n in by_rule))
        return "no eligible agent" + (" (" + "; ".join(parts) + ")" if parts else "")


# Protocols this build can call: the http-json contract and A2A (clients/protocols.py).
SUPPORTED_PROTOCOLS = frozenset({"http-json", "a2a"})


class Exclusion(enum.StrEnum):
    """Which rule excluded an agent: the key explanations count by."""

    INACTIVE = "inactive"
    PROTOCOL = "protocol"
    UNHEALTHY = "unhealthy"
    CIRCUIT_OPEN = "circuit open"
    HALF_OPEN_BUSY = "circuit half-open, trial under way"
    AT_CAPACITY = "at max concurrency"
    CATEGORY = "category"
    TAGS = "tags"
    SKILL = "skill level"


# Fleets this small are explained agent by agent, every agent judged and kept; a larger
# one by the agents listing the job's category (indexed) and a count of the rest.
NAME_ALL_UP_TO = 20

# Not a rule: the key a stored explanation counts admitted agents under that were left
# unscored, past a bounded pool's cut (Settings.agents_scored_per_job); `jobs show
# --why-not` judges any of them on demand.
NOT_SCORED = "not scored"

# Rules that depend on in-flight calls, not on the agent's record and the job: the store's
# prefilter (db/agent_repository.py) leaves these to `exclusion`, and applies all others.
LOAD_DEPENDENT = frozenset({Exclusion.HALF_OPEN_BUSY, Exclusion.AT_CAPACITY})


def exclusion(
    job: JobSpec, agent: AgentProfile, *, capacity: bool = True
) -> tuple[Exclusion, str] | None:
    """The first rule the agent breaks for this job and why, or None when it is eligible."""
    if not agent.active:
        return Exclusion.INACTIVE, "inactive"
    if agent.protocol not in SUPPORTED_PROTOCOLS:
        return Exclusion.PROTOCOL, f"protocol {agent.protocol!r} has no client in this version"
    if agent.healthy is False:
        return Exclusion.UNHEALTHY, "unhealthy"
    if agent.circuit == CircuitState.OPEN:
        return Exclusion.CIRCUIT_OPEN, "circuit open after repeated failures"
    if agent.circuit == CircuitState.HALF_OPEN and agent.in_flight >= 1:
        return Exclusion.HALF_OPEN_BUSY, "circuit half-open: its one trial call is under way"
    if capacity and agent.in_flight >= agent.max_concurrency:
        return (
            Exclusion.AT_CAPACITY,
            f"at max concurrency ({agent.in_flight}/{agent.max_concurrency})",
        )
    if job.category not in agent.categories:
        return Exclusion.CATEGORY, f"category {job.category!r} not in {sorted(agent.categories)}"
    missing = sorted(set(job.tags) - set(agent.tags))
    if missing:
        return Exclusion.TAGS, "missing tags " + ", ".join(missing)
    if agent.skill_level < job.skill_level:
        return Exclusion.SKILL, f"skill level {agent.skill_level} < required {job.skill_level}"
    return None


def exclusion_reason(job: JobSpec, agent: AgentProfile, *, capacity: bool = True) -> str | None:
    """The first rule the agent breaks for this job, or None when it is eligible."""
    found = exclusion(job, agent, capacity=capacity)
    return None if found is None else found[1]


def _latency(agent: AgentProfile) -> float:
    known = agent.stats.avg_latency_ms
    return float("inf") if known is None else known


def _split(
    job: JobSpec, agents: Iterable[AgentProfile]
) -> tuple[list[AgentProfile], list[Decision], int, dict[str, int]]:
    """Eligible agents, the excluded ones' decisions, how many fit but are busy, and how
    many each rule excluded."""
    eligible: list[AgentProfile] = []
    excluded: list[Decision] = []
    busy = 0
    counts: dict[str, int] = {}
    for agent in agents:
        found = exclusion(job, agent)
        if found is None:
            eligible.append(agent)
        else:
            busy += exclusion(job, agent, capacity=False) is None
            counts[found[0].value] = counts.get(found[0].value, 0) + 1
            excluded.append(Decision(agent.id, agent.name, False, False, found[1]))
    return eligible, excluded, busy, counts


def match(job: JobSpec, agents: Iterable[AgentProfile], limit: int) -> MatchResult:
    """Filter eligible agents, rank them best first and keep the top `limit` (classic)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    fits, decisions, busy, counts = _split(job, agents)
    eligible = [(rank_score(a.stats), a) for a in fits]
    # Ties break on latency (faster first), then name, so the order is deterministic.
    eligible.sort(key=lambda sa: (-sa[0], _latency(sa[1]), sa[1].name))
    chosen = tuple(a for _, a in eligible[:limit])
    ranked: list[Decision] = []
    for rank, (score, agent) in enumerate(eligible, start=1):
        picked = rank <= limit
        why = f"rank {rank} by score {score:.3f}"
        why += "" if picked else f" (only top {limit} taken)"
        ranked.append(Decision(agent.id, agent.name, True, picked, why, round(score, 4), rank))
    return MatchResult(chosen, tuple(ranked + decisions), busy, counts)


def unserved_by(job: JobSpec, pool: Iterable[AgentProfile], outside: int) -> MatchResult:
    """Why nobody can take the job: `pool` judged one by one (the agents listing its category,
    or every agent of a small fleet); the `outside` agents (the rest) count under the category
    rule, whatever else they break. Planning records this; intake's verdicts say the same."""
    judged = match(job, pool, 1)  # nothing fits (or it just freed up: the next plan sees it)
    counts = dict(judged.excluded)
    if outside:
        counts[Exclusion.CATEGORY.value] = counts.get(Exclusion.CATEGORY.value, 0) + outside
    excluded = tuple(d for d in judged.decisions if not d.eligible)
    return MatchResult((), excluded, judged.busy, counts)


def match_learned(
    job: JobSpec,
    agents: Iterable[AgentProfile],
    limit: int,
    evidence: Mapping[str, Evidence],
    rng: random.Random,
    *,
    explore: bool,
    failure_cost_ms: float,
    now_s: float,
    half_life_s: float,
    explain: int | None = None,
) -> MatchResult:
    """Rank eligible agents by Thompson sampling over their evidence in the job's category.

    An agent new to the category starts from its overall record (weight 2), so a proven
    agent entering a new category is neither a blank slate nor trusted blindly.
    `explain=N` writes a Decision for the first N ranked only (what `bounded` keeps, when N
    is the limit plus NEXT_FEW); None: every one.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    fits, decisions, busy, counts = _split(job, agents)
    by_id = {a.id: a for a in fits}
    nothing = Evidence()
    cands = [Candidate(a.id, evidence.get(a.id, nothing), prior_of(a.stats)) for a in fits]
    picks = rank_candidates(
        cands,
        rng,
        explore=explore,
        failure_cost_ms=failure_cost_ms,
        now=now_s,
        half_life_s=half_life_s,
        intervals_for=limit,  # the chosen: what jobs show prints in its scores table
        first=None if explain is None else max(explain, limit),
    )
    ranked: list[Decision] = []
    for p in picks:
        agent, picked = by_id[p.key], p.rank <= limit
        shown = picked
        why = (
            f"rank {p.rank}: ~{p.expected_ms / 1000:.2f} s to a good answer, success "
            f"{p.mean:.2f}" + (f" [{p.low:.2f}-{p.high:.2f}]" if shown else "")
        )
        why += " (exploration)" if p.exploration else ""
        why += "" if picked else f" (only top {limit} taken)"
        ranked.append(
            Decision(
                agent.id,
                agent.name,
                True,
                picked,
                why,
                round(p.mean, 4),
                p.rank,
                round(p.low, 4) if shown else None,
                round(p.high, 4) if shown else None,
                round(p.expected_ms, 1),
                p.exploration,
            )
        )
    chosen = tuple(by_id[p.key] for p in picks[:limit])
    return MatchResult(chosen, tuple(ranked + decisions), busy, counts)
