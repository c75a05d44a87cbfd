"""The reads and the write of ranking feedback: decided calls per (agent, hour), scores stored.

The hour rows of report_agent_period serve the read when they cover the span (an hourly run
then reads agents x hours, not execution rows); the execution rows serve it otherwise. Both
give the same counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import cast

import pandas as pd
from sqlalchemy import Connection, Table, bindparam, func, select, update

from agent_dispatch.db.models import Agent
from agent_dispatch.db.reporting_queries import A, decided_per_hour
from agent_dispatch.db.reporting_store import decided_hours, read_watermarks
from agent_dispatch.domain.periods import Window, ceil, floor

# (agent id, reputation, success rate or None): what ranking reads from the agents table.
Score = tuple[str, float, float | None]


def reports_cover(conn: Connection, since: dt.datetime, now: dt.datetime) -> bool:
    """Do the hour rows hold every decided call of [since, now)? (see ReportWatermark)"""
    mark = read_watermarks(conn).get("hour")
    if mark is None or mark["watermark"] < now:
        return False
    first = conn.scalar(select(func.min(A.c.finished_at)))
    if first is None:
        return False
    first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
    return bool(mark["covered_since"] <= max(since, floor(first, "hour")))


def hourly_results(conn: Connection, since: dt.datetime, now: dt.datetime) -> pd.DataFrame:
    """Per (agent_id, hour): successes and decided calls that ended in [since, now).

    The partial first hour always comes from the execution rows.
    """
    if not reports_cover(conn, since, now):
        return decided_per_hour(conn, since, now)
    whole = ceil(since, "hour")
    parts = [decided_per_hour(conn, since, whole)] if whole > since else []
    parts.append(decided_hours(conn, Window(whole, now)))
    return pd.concat([p for p in parts if not p.empty] or parts[-1:], ignore_index=True)


def write_scores(conn: Connection, scores: Sequence[Score]) -> int:
    """Store reputation and success_rate on the agents; returns how many agents changed."""
    if not scores:
        return 0
    agents = cast(Table, Agent.__table__)
    stmt = (
        update(agents)
        .where(agents.c.id == bindparam("aid"))
        .values(reputation=bindparam("rep"), success_rate=bindparam("rate"))
    )
    params = [{"aid": aid, "rep": rep, "rate": rate} for aid, rep, rate in scores]
    result = conn.execute(stmt, params)
    # Agents removed meanwhile match nothing; rowcount of an executemany may be unknown (-1).
    return len(params) if result.rowcount < 0 else int(result.rowcount)
