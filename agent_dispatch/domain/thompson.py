"""Learned ranking: fill dispatch slots by Thompson sampling over each agent's posterior.

Each eligible agent's success probability is drawn from its Beta posterior; agents are then
ordered by the expected time to a good answer under that draw. An agent with little evidence
has a wide posterior, so it sometimes draws high and gets tried; a proven agent draws near
its true rate every time, so it keeps its slot unless a newcomer looks genuinely better.
With exploration off the posterior mean replaces the draw (a greedy, deterministic order).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import NamedTuple

from agent_dispatch.domain.betadist import beta_interval
from agent_dispatch.domain.model import AgentStats
from agent_dispatch.domain.posterior import Evidence, Prior, beta_params
from agent_dispatch.domain.ranking import smoothed_success_rate

DEFAULT_LATENCY_MS = 1000.0  # assumed for an agent never seen answering (and no peers known)


class Candidate(NamedTuple):
    """One agent to rank (a NamedTuple: a plan builds one per admitted agent)."""

    key: str  # agent id
    evidence: Evidence = Evidence()
    prior: Prior = Prior()


@dataclasses.dataclass(frozen=True, slots=True)
class Pick:
    """One candidate's place in the order, with the numbers `jobs show` prints."""

    key: str
    rank: int  # 1-based, after sampling
    expected_ms: float  # expected time to a good answer, under the draw (lower is better)
    drawn: float  # the sampled (or mean) success probability used for the order
    mean: float  # posterior mean success probability
    low: float  # lower end of the 90% credible interval: the displayed reputation
    high: float
    latency_ms: float  # mean time to a good answer used in the score
    exploration: bool  # placed higher than its greedy (posterior-mean) rank


def prior_of(stats: AgentStats) -> Prior:
    """An agent new to a category starts from its overall record, weight 2 pseudo-calls: a
    proven agent entering a new category is neither a blank slate nor trusted blindly."""
    return Prior.around(smoothed_success_rate(stats))


def expected_time_ms(p: float, latency_ms: float, failure_cost_ms: float) -> float:
    """Expected time to a good answer: the call's own time, plus the cost of falling back
    (to the next agent, or a retry) weighted by the chance that this one fails."""
    return latency_ms + (1.0 - p) * failure_cost_ms


def rank_candidates(
    candidates: Sequence[Candidate],
    rng: random.Random,
    *,
    explore: bool,
    failure_cost_ms: float,
    now: float | None = None,
    half_life_s: float = 0.0,
    intervals: bool = True,
    intervals_for: int | None = None,
    first: int | None = None,
) -> list[Pick]:
    """Every candidate, best first (`first=N`: the first N only, every candidate drawn and
    ranked all the same). The caller takes as many as it has slots.

    `intervals=False` skips the credible interval (a few hundred float operations each),
    which only display needs; the simulation ranks millions of times. `intervals_for=N`
    computes it for the first N picks only (the ones an explanation keeps); the rest get
    (0, 1).
    """
    # Each candidate's evidence as seen from `now` (decayed), as numbers: no Evidence built.
    weights = [1.0 if now is None else c.evidence.weight(now, half_life_s) for c in candidates]
    means = [c.evidence.mean_latency_ms(w) for c, w in zip(candidates, weights, strict=True)]
    known = sorted(m for m in means if m is not None)
    # A newcomer is assumed as fast as the typical peer: neither favoured nor buried.
    fallback = known[len(known) // 2] if known else DEFAULT_LATENCY_MS
    betavariate = rng.betavariate
    rows = []
    for cand, w, known_ms in zip(candidates, weights, means, strict=True):
        a, b = beta_params(cand.evidence, cand.prior, w)
        mean = a / (a + b)
        drawn = betavariate(a, b) if explore else mean
        latency = fallback if known_ms is None else known_ms
        rows.append(
            (
                expected_time_ms(drawn, latency, failure_cost_ms),
                expected_time_ms(mean, latency, failure_cost_ms),
                cand.key,
                drawn,
                mean,
                a,
                b,
                latency,
            )
        )
    greedy_rank = {r[2]: i for i, r in enumerate(sorted(rows, key=lambda r: (r[1], r[2])), 1)}
    picks = []
    ranked = sorted(rows, key=lambda r: (r[0], r[2]))
    for rank, (score, _, key, drawn, mean, a, b, latency) in enumerate(
        ranked if first is None else ranked[:first], start=1
    ):
        shown = intervals and (intervals_for is None or rank <= intervals_for)
        low, high = beta_interval(a, b) if shown else (0.0, 1.0)
        picks.append(
            Pick(key, rank, score, drawn, mean, low, high, latency, rank < greedy_rank[key])
        )
    return picks
