"""Ranking score: reputation and success rate, corrected for small samples."""

from __future__ import annotations

from agent_dispatch.domain.model import AgentStats

# A new agent is assumed to succeed half the time; PRIOR_WEIGHT pseudo-runs of that prior
# mean one lucky success (1/1) scores 0.58, well below a long good record (95/100: 0.93).
PRIOR_MEAN = 0.5
PRIOR_WEIGHT = 5.0
REPUTATION_WEIGHT = 0.4


def smoothed_success_rate(stats: AgentStats) -> float:
    """Bayesian average of the success rate (a Beta prior with PRIOR_WEIGHT pseudo-runs).

    The time-decayed rate is used when the analytics flow has computed one; the number of
    decided runs still sets how far it is trusted over the prior.
    """
    rate = stats.recent_success_rate
    successes = stats.successes if rate is None else rate * stats.decided
    return (successes + PRIOR_MEAN * PRIOR_WEIGHT) / (stats.decided + PRIOR_WEIGHT)


def rank_score(stats: AgentStats) -> float:
    """Higher is better; in [0, 1]."""
    reputation = min(max(stats.reputation, 0.0), 1.0)
    success = smoothed_success_rate(stats)
    return REPUTATION_WEIGHT * reputation + (1 - REPUTATION_WEIGHT) * success
