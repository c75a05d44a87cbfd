"""PostgreSQL fast path, the reads: one pass over a window's execution rows.

The database joins the calls of the window to their jobs once and groups them per
(UTC hour, agent, category) with plain counts — hash aggregation, so the execution rows are
never sorted — and hands back the values percentiles need (completed-call latencies, time to
first result, end-to-end time) packed per group as one float8 blob (`float8send`: the exact
binary value, no text round trip, no Python object per value). reporting.fine rolls these
fine groups up into hours, days and window totals with numpy.

SQLite keeps the plain queries of db.reporting_queries (same numbers, slower).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    LargeBinary,
    Text,
    and_,
    cast,
    extract,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.sql.elements import ColumnElement

from agent_dispatch.db import reporting_facts as facts
from agent_dispatch.db import reporting_sql as sql
from agent_dispatch.domain.periods import Window
from agent_dispatch.domain.statuses import JOB_TERMINAL, AgentRunStatus, JobStatus

HOUR_S = 3600
# Settings of the aggregation's transaction (SET LOCAL). Index lookups priced as the cached
# reads they are (a window of a few hours then goes through the finished_at indexes and the
# keys, not a scan of the tables); enough memory to hash-join and hash-aggregate in memory
# (the default work_mem of 4 MB spills the joins to disk at millions of rows); hashing rather
# than sorting the rows (the planner overestimates the groups); and parallel workers for the
# scan and joins even though every joined row then crosses the Gather (string_agg cannot be
# combined from partial aggregates before PostgreSQL 16).
SESSION = {
    "random_page_cost": "1.1",
    "work_mem": "256MB",
    "enable_sort": "off",
    "parallel_setup_cost": "0",
    "parallel_tuple_cost": "0.001",
}

ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELLED)


@dataclasses.dataclass(frozen=True)
class Values:
    """Values of one measure: `values[i]` belongs to fine group `owner[i]`."""

    owner: np.ndarray[Any, np.dtype[np.int64]]
    values: np.ndarray[Any, np.dtype[np.float64]]

    @functools.cached_property
    def by_value(self) -> np.ndarray[Any, np.dtype[np.intp]]:
        """np.argsort(values, kind="stable"): sorted once, shared by every roll-up."""
        return np.argsort(self.values, kind="stable")


@dataclasses.dataclass(frozen=True)
class Fine:
    """Fine groups of a window: one row per (hour, keys...), plus the values per measure."""

    window: Window
    groups: pd.DataFrame  # 'hour' (int64 hours since the epoch), keys, counts
    values: dict[str, Values]

    def within(self, window: Window) -> Fine:
        """The groups whose hour lies in `window` (whole hours), values renumbered."""
        lo, hi = _hour(window.start), _hour(window.end)
        keep = ((self.groups["hour"] >= lo) & (self.groups["hour"] < hi)).to_numpy()
        if keep.all():
            return dataclasses.replace(self, window=window)
        new_index = np.cumsum(keep) - 1
        values = {}
        for name, v in self.values.items():
            mask = keep[v.owner]
            values[name] = Values(new_index[v.owner[mask]], v.values[mask])
        return Fine(window, self.groups[keep].reset_index(drop=True), values)


def _hour(moment: Any) -> int:
    return int(pd.Timestamp(moment).timestamp()) // HOUR_S


def planner_settings(conn: Connection) -> None:
    """The planner settings of the one pass, for this transaction (PostgreSQL only)."""
    for name, value in SESSION.items():
        # SET LOCAL: ends with the transaction the caller's connection is in.
        conn.exec_driver_sql(f"SET LOCAL {name} = '{value}'")


def _blob(value: ColumnElement[Any], present: ColumnElement[bool]) -> ColumnElement[Any]:
    packed = func.string_agg(func.float8send(value), literal_column("''::bytea"))
    return type_coerce(packed.filter(present), LargeBinary)


def _hour_of(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.date_trunc(sql.literal("hour"), column, sql.literal("UTC"))


def _hours(bucket: ColumnElement[Any]) -> ColumnElement[Any]:
    """An hour bucket as whole hours since the epoch (computed once per group, not per row)."""
    epoch = cast(extract("epoch", bucket), BigInteger)
    return type_coerce(epoch / literal_column(str(HOUR_S), BigInteger), BigInteger)


def _fetch(
    conn: Connection, stmt: Any, blobs: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, Values]]:
    planner_settings(conn)
    result = conn.execute(stmt)
    names = list(result.keys())
    rows = result.all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    data = {n: c for n, c in zip(names, columns, strict=True) if n not in blobs}
    frame = pd.DataFrame(data, columns=[n for n in names if n not in blobs])
    frame["hour"] = frame["hour"].astype("int64")
    out: dict[str, Values] = {}
    for name in blobs:
        packed = [b or b"" for b in columns[names.index(name)]]
        counts = np.fromiter((len(b) // 8 for b in packed), dtype=np.int64, count=len(packed))
        raw = np.frombuffer(b"".join(packed), dtype=">f8").astype(np.float64)
        out[name] = Values(np.repeat(np.arange(len(packed), dtype=np.int64), counts), raw)
    return frame, out


def fetch_calls(conn: Connection, window: Window) -> Fine:
    """Ended calls of the window per (hour, agent, category): outcome counts and latencies.

    One scan of the calls: their job's category is on the row (db.reporting_facts)."""
    A = facts.CALLS
    hour = _hour_of(A.c.finished_at)
    completed = A.c.status == AgentRunStatus.COMPLETED.value
    outcome = sql.outcome(A)
    with_latency = and_(completed, A.c.latency_ms.is_not(None))
    stmt = (
        select(
            _hours(hour).label("hour"),
            type_coerce(A.c.agent_name, Text).label("agent_name"),
            type_coerce(A.c.category, Text).label("category"),
            type_coerce(func.max(A.c.agent_id), Text).label("agent_id"),
            func.count().label("calls"),
            *(
                func.count().filter(outcome == sql.literal(o)).label(c)
                for o, c in sql.OUTCOME_COLUMNS.items()
            ),
            func.count().filter(A.c.won).label("wins"),
            func.count().filter(with_latency).label("latency_samples"),
            type_coerce(func.sum(A.c.latency_ms).filter(with_latency), Float).label(
                "latency_sum_ms"
            ),
            _blob(A.c.latency_ms, with_latency).label("latency"),
        )
        .where(sql.in_window(A.c.finished_at, window.start, window.end))
        .where(A.c.status.in_(sql.AGENT_ENDED))
        .group_by(hour, A.c.agent_name, A.c.category)
    )
    frame, values = _fetch(conn, stmt, ["latency"])
    frame["latency_sum_ms"] = frame["latency_sum_ms"].astype("float64")
    return Fine(window, frame, values)


def fetch_jobs(conn: Connection, window: Window) -> Fine:
    """Jobs that ended in the window per (hour, category): statuses, attempts, durations.

    One scan of the jobs: attempts and first start/result are on the ended job's row."""
    J = facts.JOBS
    c = J.c
    ttfr = sql.millis_between("postgresql", c.first_result_at, c.first_started_at)
    e2e = sql.millis_between("postgresql", c.finished_at, c.created_at)
    hour = _hour_of(c.finished_at)
    stmt = (
        select(
            _hours(hour).label("hour"),
            type_coerce(c.category, Text).label("category"),
            func.count().label("jobs"),
            *(func.count().filter(c.status == s.value).label(s.value.lower()) for s in ENDED),
            type_coerce(
                func.sum(cast(func.coalesce(c.dispatch_attempts, 0), BigInteger)), BigInteger
            ).label("dispatch_attempts"),
            _blob(ttfr, ttfr.is_not(None)).label("ttfr"),
            _blob(e2e, e2e.is_not(None)).label("e2e"),
        )
        .where(sql.in_window(c.finished_at, window.start, window.end))
        .where(c.status.in_([s.value for s in JOB_TERMINAL]))
        .where(facts.on_queue())  # queue tasks only: workflow steps have their own figures
        .group_by(hour, c.category)
    )
    frame, values = _fetch(conn, stmt, ["ttfr", "e2e"])
    frame["dispatch_attempts"] = pd.to_numeric(frame["dispatch_attempts"]).astype("int64")
    return Fine(window, frame, values)
