"""The simulated world (hidden truths) and the three rankings the benchmark compares."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import defaultdict

from agent_dispatch.domain.model import AgentOutcome, AgentStats
from agent_dispatch.domain.posterior import Evidence, Seen, posterior_mean
from agent_dispatch.domain.ranking import rank_score, smoothed_success_rate
from agent_dispatch.domain.stats import apply_outcome
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind
from agent_dispatch.domain.thompson import (
    Candidate,
    expected_time_ms,
    prior_of,
    rank_candidates,
)

GAP_S = 2.0  # simulated seconds between job starts
HALF_LIFE_S = 200.0  # evidence half-life: 100 jobs, about 70 of them in text
LIMIT = 3  # agents per job at most (max_agents_per_job)
TIMEOUT_MS = 10_000.0
HANG_SHARE = 0.25  # failures that never answer: they end as a TIMEOUT at the deadline
ANALYTICS_EVERY_S = 600.0  # today's ranking: how often the analytics flow refreshes rates
# What a failed first pick costs in the score: the fallback agent's time, or the timeout.
FAILURE_COST_MS = TIMEOUT_MS


@dataclasses.dataclass(frozen=True)
class Truth:
    rates: dict[str, float]  # category -> true success probability
    median_ms: float
    sigma: float  # lognormal spread of latency
    joins_at: int = 0
    degrade_at: int | None = None
    degraded_rate: float = 0.0


@dataclasses.dataclass
class World:
    truths: dict[str, Truth]
    degraded_agent: str
    degrade_at: int
    late_agent: str
    join_at: int

    def category(self, rng: random.Random) -> str:
        return "text" if rng.random() < 0.7 else "code"

    def eligible(self, category: str, job: int) -> list[str]:
        return [k for k, t in self.truths.items() if category in t.rates and job >= t.joins_at]

    def rate(self, key: str, category: str, job: int) -> float:
        t = self.truths[key]
        if t.degrade_at is not None and job >= t.degrade_at:
            return t.degraded_rate
        return t.rates[category]

    def best_rate(self, category: str, job: int, eligible: list[str]) -> float:
        return max(self.rate(k, category, job) for k in eligible)

    def expected_ms(self, key: str, category: str, job: int) -> float:
        """True expected time to a good answer of a first pick (mean latency, then fallback)."""
        t = self.truths[key]
        mean_ms = t.median_ms * math.exp(t.sigma**2 / 2)
        return expected_time_ms(self.rate(key, category, job), mean_ms, TIMEOUT_MS)

    def best_expected_ms(self, category: str, job: int, eligible: list[str]) -> float:
        return min(self.expected_ms(k, category, job) for k in eligible)

    def answer(self, key: str, category: str, job: int, seed: int) -> tuple[float, AgentOutcome]:
        """When and how the agent answers: seeded by (seed, job, agent), so every policy that
        calls this agent on this job gets the very same answer."""
        own = random.Random(f"{seed}:{job}:{key}")
        t = self.truths[key]
        ms = t.median_ms * math.exp(own.gauss(0.0, t.sigma))
        if own.random() < self.rate(key, category, job):
            if ms < TIMEOUT_MS:
                return ms, AgentOutcome(AgentRunStatus.COMPLETED, result="ok")
        elif own.random() >= HANG_SHARE:
            return min(ms * 0.5, TIMEOUT_MS), AgentOutcome(
                AgentRunStatus.FAILED, failure_kind=FailureKind.AGENT_FAILED
            )
        return TIMEOUT_MS, AgentOutcome(AgentRunStatus.TIMEOUT, failure_kind=FailureKind.TIMEOUT)


def make_world(jobs: int) -> World:
    degrade_at, join_at = jobs // 2, (jobs * 3) // 4
    truths = {
        "steady": Truth(
            {"text": 0.95, "code": 0.90}, 800, 0.4, degrade_at=degrade_at, degraded_rate=0.40
        ),
        "swift": Truth({"text": 0.85}, 300, 0.3),
        "careful": Truth({"text": 0.97, "code": 0.93}, 2500, 0.3),
        "polyglot": Truth({"text": 0.60, "code": 0.95}, 600, 0.5),
        "flaky": Truth({"text": 0.50, "code": 0.50}, 400, 0.8),
        "rookie": Truth({"text": 0.99, "code": 0.97}, 350, 0.3, joins_at=join_at),
    }
    return World(truths, "steady", degrade_at, "rookie", join_at)


class Ranker:
    """Every ranking keeps per-(agent, category) evidence for the hedge delay (p95)."""

    def __init__(self) -> None:
        self.evidence: dict[tuple[str, str], Evidence] = defaultdict(Evidence)

    def hedge_basis(self, key: str, category: str, now_s: float, q: float) -> float | None:
        """The latency quantile the hedge waits for (the same for every ranking)."""
        return self.evidence[key, category].decayed(now_s, HALF_LIFE_S).latency_quantile_ms(q)

    def observe(
        self, key: str, category: str, out: AgentOutcome, won: bool, now_s: float, seen: Seen | None
    ) -> None:
        """`seen`: what the call says about the agent (posterior.seen_in_race), as production."""
        if seen is not None:
            ev = self.evidence[key, category]
            self.evidence[key, category] = ev.observe(seen, out.latency_ms, now_s, HALF_LIFE_S)

    def order(self, eligible: list[str], category: str, now_s: float) -> list[str]:
        raise NotImplementedError

    def greedy(self, eligible: list[str], category: str, now_s: float) -> list[str]:
        """The ranking's own score order, without sampling (the same as `order` unless it
        samples)."""
        return self.order(eligible, category, now_s)

    def success(self, key: str, category: str, now_s: float) -> float:
        """The ranking's own estimate of the agent's success chance (risk-based hedging)."""
        raise NotImplementedError


class Naive(Ranker):
    """Raw lifetime success rate per agent, unknown agents at 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def observe(
        self, key: str, category: str, out: AgentOutcome, won: bool, now_s: float, seen: Seen | None
    ) -> None:
        super().observe(key, category, out, won, now_s, seen)
        if out.judges_agent:
            self.counts[key][0] += out.succeeded
            self.counts[key][1] += 1

    def success(self, key: str, category: str, now_s: float) -> float:
        s, n = self.counts[key]
        return s / n if n else 0.5

    def order(self, eligible: list[str], category: str, now_s: float) -> list[str]:
        return sorted(eligible, key=lambda k: (-self.success(k, category, now_s), k))


class Today(Ranker):
    """The current ranking: global AgentStats, EMA per job, a periodic analytics refresh."""

    def __init__(self) -> None:
        super().__init__()
        self.stats: dict[str, AgentStats] = defaultdict(AgentStats)
        self.history: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        self.refreshed_at = 0.0

    def observe(
        self, key: str, category: str, out: AgentOutcome, won: bool, now_s: float, seen: Seen | None
    ) -> None:
        super().observe(key, category, out, won, now_s, seen)
        self.stats[key] = apply_outcome(self.stats[key], out, won=won)
        if out.judges_agent:
            self.history[key].append((now_s, out.succeeded))

    def _refresh(self, now_s: float) -> None:
        """What the analytics flow does: decayed success rate -> recent rate and reputation."""
        for key, rows in self.history.items():
            w = [(0.5 ** ((now_s - at) / HALF_LIFE_S), ok) for at, ok in rows]
            rate = sum(x for x, ok in w if ok) / sum(x for x, _ in w)
            self.stats[key] = self.stats[key]._replace(recent_success_rate=rate, reputation=rate)
        self.refreshed_at = now_s

    def order(self, eligible: list[str], category: str, now_s: float) -> list[str]:
        if now_s - self.refreshed_at >= ANALYTICS_EVERY_S:
            self._refresh(now_s)

        def key(k: str) -> tuple[float, float, str]:
            s = self.stats[k]
            return (-rank_score(s), s.avg_latency_ms or math.inf, k)

        return sorted(eligible, key=key)

    def success(self, key: str, category: str, now_s: float) -> float:
        return smoothed_success_rate(self.stats[key])


class Learned(Today):
    """The new ranking: Thompson sampling over per-(agent, category) decayed posteriors.

    Its prior is production's (`thompson.prior_of` over the agent's global statistics, which
    the analytics refresh as for today's ranking)."""

    def __init__(self, rng: random.Random, explore: bool = True) -> None:
        super().__init__()
        self.rng = rng
        self.explore = explore

    def success(self, key: str, category: str, now_s: float) -> float:
        ev = self.evidence[key, category].decayed(now_s, HALF_LIFE_S)
        return posterior_mean(ev, prior_of(self.stats[key]))

    def order(self, eligible: list[str], category: str, now_s: float) -> list[str]:
        return self._ranked(eligible, category, now_s, self.explore)

    def greedy(self, eligible: list[str], category: str, now_s: float) -> list[str]:
        return self._ranked(eligible, category, now_s, explore=False)

    def _ranked(self, eligible: list[str], category: str, now_s: float, explore: bool) -> list[str]:
        if now_s - self.refreshed_at >= ANALYTICS_EVERY_S:
            self._refresh(now_s)
        cands = [
            Candidate(k, self.evidence[k, category], prior_of(self.stats[k])) for k in eligible
        ]
        picks = rank_candidates(
            cands,
            self.rng,
            explore=explore,
            failure_cost_ms=FAILURE_COST_MS,
            now=now_s,
            half_life_s=HALF_LIFE_S,
            intervals=False,
        )
        return [p.key for p in picks]


def make_rankers(world: World, rng: random.Random) -> dict[str, Ranker]:
    return {"naive": Naive(), "today": Today(), "new": Learned(rng)}
