"""Feedback into ranking: time-decayed success rate and reputation per agent.

A result's weight halves every `half_life`; cancelled losers and blocked calls are not
results of the agent's work and are left out. The reputation is the decayed success rate
pulled towards the ranking prior (PRIOR_MEAN over PRIOR_WEIGHT pseudo-results), so an agent
with little recent history is neither hero nor villain.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from agent_dispatch.domain.ranking import PRIOR_MEAN, PRIOR_WEIGHT

# Results older than this many half-lives weigh under 0.1% and are not read at all.
HORIZON_HALF_LIVES = 10
# Per-hour counts are dated at the middle of their hour (error < 1% of a weight at 7 days).
HOUR_MIDDLE = dt.timedelta(minutes=30)


@dataclasses.dataclass(frozen=True, slots=True)
class Decayed:
    """Weighted successes over weighted decided results."""

    successes: float
    weight: float

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.weight if self.weight > 0 else None

    @property
    def reputation(self) -> float:
        return (self.successes + PRIOR_MEAN * PRIOR_WEIGHT) / (self.weight + PRIOR_WEIGHT)


def weight(age: dt.timedelta, half_life: dt.timedelta) -> float:
    """0.5 ** (age / half_life); a result from the future counts as brand new."""
    if half_life <= dt.timedelta(0):
        raise ValueError("half-life must be positive")
    return float(0.5 ** (max(age, dt.timedelta(0)) / half_life))


def decayed_counts(
    rows: Iterable[tuple[dt.datetime, int, int]], now: dt.datetime, half_life: dt.timedelta
) -> Decayed:
    """Fold (timestamp, successes, decided) rows into one decayed score."""
    successes = total = 0.0
    for at, ok, decided in rows:
        w = weight(now - at, half_life)
        successes += w * ok
        total += w * decided
    return Decayed(successes, total)


def decayed(
    rows: Iterable[tuple[dt.datetime, bool]], now: dt.datetime, half_life: dt.timedelta
) -> Decayed:
    """Fold (timestamp, success) results into one decayed score."""
    return decayed_counts(((at, int(ok), 1) for at, ok in rows), now, half_life)


@dataclasses.dataclass(frozen=True, slots=True)
class AgentFeedback:
    agent_id: str
    reputation: float
    success_rate: float | None
    weight: float


def horizon(now: dt.datetime, half_life: dt.timedelta) -> dt.datetime:
    """Where results start to count: older ones weigh under 0.1%."""
    return now - HORIZON_HALF_LIVES * half_life


def scores(frame: pd.DataFrame, now: dt.datetime, half_life: dt.timedelta) -> list[AgentFeedback]:
    """Decayed scores per agent from (agent_id, period_start, successes, decided) hour rows."""
    if frame.empty:
        return []
    # Vectorised decayed_counts(): one weight per (agent, hour) row, summed per agent.
    half_us = half_life / dt.timedelta(microseconds=1)
    if half_us <= 0:
        raise ValueError("half-life must be positive")
    middles = pd.to_datetime(frame["period_start"], utc=True) + HOUR_MIDDLE
    age_us = (pd.Timestamp(now) - middles).to_numpy(dtype="timedelta64[us]").astype(np.int64)
    w = np.power(0.5, np.maximum(age_us, 0) / half_us)
    sums = (
        pd.DataFrame(
            {
                "agent_id": frame["agent_id"].astype(str),
                "successes": w * frame["successes"].to_numpy(dtype=np.float64),
                "weight": w * frame["decided"].to_numpy(dtype=np.float64),
            }
        )
        .groupby("agent_id", sort=True)[["successes", "weight"]]
        .sum()
    )
    out = []
    for agent_id, successes, total in sums.itertuples():
        score = Decayed(float(successes), float(total))
        rate = score.success_rate
        out.append(
            AgentFeedback(
                str(agent_id),
                round(score.reputation, 6),
                None if rate is None else round(rate, 6),
                score.weight,
            )
        )
    return out
