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
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, bindparam, func, select, update

from agent_dispatch.db.models import Agent
from agent_dispatch.domain.ranking import PRIOR_MEAN, PRIOR_WEIGHT
from agent_dispatch.reporting import store
from agent_dispatch.reporting.queries import A, decided_per_hour
from agent_dispatch.reporting.window import Window, ceil, floor

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


def _reports_cover(conn: Connection, since: dt.datetime, now: dt.datetime) -> bool:
    """Do the hour rows hold every decided call of [since, now)? (see ReportWatermark)"""
    mark = store.read_watermarks(conn).get("hour")
    if mark is None or mark["watermark"] < now:
        return False
    first = conn.scalar(select(func.min(A.c.finished_at)))
    if first is None:
        return False
    first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
    return bool(mark["covered_since"] <= max(since, floor(first, "hour")))


def hourly_results(conn: Connection, since: dt.datetime, now: dt.datetime) -> pd.DataFrame:
    """Per (agent_id, hour): successes and decided calls that ended in [since, now).

    From the report_agent_period hour rows when they cover the span — what an incremental
    hourly run reads is then the agents x hours of the horizon, not its execution rows —
    and from the execution rows otherwise. Both give the same counts; the partial first
    hour always comes from the execution rows.
    """
    if not _reports_cover(conn, since, now):
        return decided_per_hour(conn, since, now)
    whole = ceil(since, "hour")
    parts = [decided_per_hour(conn, since, whole)] if whole > since else []
    parts.append(store.decided_hours(conn, Window(whole, now)))
    return pd.concat([p for p in parts if not p.empty] or parts[-1:], ignore_index=True)


def compute(engine: Engine, now: dt.datetime, half_life: dt.timedelta) -> list[AgentFeedback]:
    """Decayed scores of every agent with decided results inside the horizon."""
    since = now - HORIZON_HALF_LIVES * half_life
    with engine.connect() as conn:
        frame = hourly_results(conn, since, now)
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


def write(engine: Engine, feedback: list[AgentFeedback]) -> int:
    """Store reputation and success_rate on the agents; returns how many agents changed."""
    if not feedback:
        return 0
    agents = cast(Table, Agent.__table__)
    stmt = (
        update(agents)
        .where(agents.c.id == bindparam("aid"))
        .values(reputation=bindparam("rep"), success_rate=bindparam("rate"))
    )
    params = [{"aid": f.agent_id, "rep": f.reputation, "rate": f.success_rate} for f in feedback]
    with engine.begin() as conn:
        result = conn.execute(stmt, params)
    # Agents removed meanwhile match nothing; rowcount of an executemany may be unknown (-1).
    return len(params) if result.rowcount < 0 else int(result.rowcount)
