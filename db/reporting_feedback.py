"""The reads and the write of ranking feedback: decided calls per (agent, hour), scores stored.

The hour rows of report_agent_period serve the read for the whole hours they hold (up to the
watermark: an hourly run then reads agents x hours, not execution rows); the execution rows
serve the rest. Both give the same counts.
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


def reported_until(conn: Connection, since: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """Up to when the hour rows hold every decided call from `since` (see ReportWatermark):
    `now` when the watermark has reached it, else the start of the watermark's hour (that
    bucket holds only the calls before the watermark); None when they do not cover `since`.
    """
    mark = read_watermarks(conn).get("hour")
    if mark is None:
        return None
    first = conn.scalar(select(func.min(A.c.finished_at)))
    if first is None:
        return None
    first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
    if mark["covered_since"] > max(since, floor(first, "hour")):
        return None
    watermark: dt.datetime = mark["watermark"]
    return now if watermark >= now else floor(watermark, "hour")


def hourly_results(conn: Connection, since: dt.datetime, now: dt.datetime) -> pd.DataFrame:
    """Per (agent_id, hour): successes and decided calls that ended in [since, now).

    The whole hours the report rows hold come from them; the partial first hour and the
    hours after the watermark from the execution rows (proportional to the new rows).
    """
    until = reported_until(conn, since, now)
    whole = ceil(since, "hour")
    if until is None or until <= whole:
        return decided_per_hour(conn, since, now)
    parts = [decided_per_hour(conn, since, whole)] if whole > since else []
    parts.append(decided_hours(conn, Window(whole, until)))
    if until < now:
        parts.append(decided_per_hour(conn, until, now))
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
