"""Idempotent writes of the reporting tables: a period's rows are replaced, never added to."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast

import pandas as pd
from sqlalchemy import Connection, Engine, Table, delete, insert, select

from agent_dispatch.db.reporting_models import ReportAgentPeriod, ReportJobPeriod
from agent_dispatch.reporting.window import PeriodKind, Window, aligned

RAP = cast(Table, ReportAgentPeriod.__table__)
RJP = cast(Table, ReportJobPeriod.__table__)
BATCH_ROWS = 5_000


@dataclasses.dataclass(frozen=True, slots=True)
class Written:
    kind: PeriodKind
    window: Window  # the whole buckets replaced
    agent_rows: int
    job_rows: int


def records(frame: pd.DataFrame, computed_at: dt.datetime) -> list[dict[str, Any]]:
    """Frame rows as plain dicts for executemany: NaN -> None, timestamps -> datetime."""
    columns: list[list[Any]] = []
    for name in frame.columns:
        series = frame[name]
        if name == "period_start":
            columns.append([t.to_pydatetime() for t in pd.to_datetime(series, utc=True)])
            continue
        # Column-wise: far faster than converting cell by cell over tens of thousands of rows.
        values = series.to_numpy(dtype=object, copy=True)
        values[series.isna().to_numpy()] = None
        columns.append(values.tolist())
    names = [str(c) for c in frame.columns]
    return [
        {**dict(zip(names, row, strict=True)), "computed_at": computed_at}
        for row in zip(*columns, strict=True)
    ]


def replace_periods(
    engine: Engine,
    kind: PeriodKind,
    window: Window,
    agents: pd.DataFrame,
    jobs: pd.DataFrame,
    computed_at: dt.datetime,
) -> Written:
    """Delete every row of the aligned buckets, then insert the new ones, in one transaction."""
    w = aligned(window, kind)
    for frame in (agents, jobs):
        starts = frame["period_start"]
        if not ((starts >= pd.Timestamp(w.start)) & (starts < pd.Timestamp(w.end))).all():
            raise ValueError(f"rows outside the {kind} buckets being replaced ({w.label()})")
    with engine.begin() as conn:
        for table in (RAP, RJP):
            conn.execute(
                delete(table).where(
                    table.c.period_kind == kind,
                    table.c.period_start >= w.start,
                    table.c.period_start < w.end,
                )
            )
        for table, frame in ((RAP, agents), (RJP, jobs)):
            # In slices: a long range is tens of thousands of rows; never all as dicts at once.
            for first in range(0, len(frame), BATCH_ROWS):
                part = frame.iloc[first : first + BATCH_ROWS]
                conn.execute(insert(table), records(part, computed_at))
    return Written(kind, w, len(agents), len(jobs))


def _read(
    conn: Connection, table: Table, kind: PeriodKind, window: Window, category: str | None
) -> pd.DataFrame:
    stmt = select(table).where(
        table.c.period_kind == kind,
        table.c.period_start >= window.start,
        table.c.period_start < window.end,
    )
    if category is not None:
        stmt = stmt.where(table.c.category == category)
    result = conn.execute(stmt.order_by(table.c.period_start, table.c.id))
    return pd.DataFrame(result.all(), columns=list(result.keys()))


def read_agent_periods(
    conn: Connection, kind: PeriodKind, window: Window, category: str | None = "*"
) -> pd.DataFrame:
    return _read(conn, RAP, kind, aligned(window, kind), category)


def read_job_periods(
    conn: Connection, kind: PeriodKind, window: Window, category: str | None = "*"
) -> pd.DataFrame:
    return _read(conn, RJP, kind, aligned(window, kind), category)
