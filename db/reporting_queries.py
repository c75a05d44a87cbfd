"""Aggregation queries: the database groups execution rows per agent/category/bucket.

Only aggregated rows reach Python (agents x categories x buckets), so memory does not grow with
the number of execution rows. PostgreSQL computes percentiles with percentile_cont; on SQLite
window functions rank the values and only the few rows each percentile needs are read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Connection, case, func, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from agent_dispatch.db import reporting_sql as sql
from agent_dispatch.db.models import Job, JobDistributionAgent, JobDistributionRecord, on_queue
from agent_dispatch.db.reporting_models import ALL_CATEGORIES as ALL
from agent_dispatch.db.reporting_percentiles import column_name, from_ranked, ranked_statement
from agent_dispatch.domain.periods import PeriodKind, Window
from agent_dispatch.domain.statuses import JOB_TERMINAL, AgentRunStatus, JobStatus

LATENCY_QS = (0.5, 0.9, 0.99)
DURATION_QS = (0.5, 0.9)
# Upper edges (ms) of the latency histogram bins; the last bin is open-ended.
LATENCY_EDGES_MS = (50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000)

A = JobDistributionAgent.__table__
D = JobDistributionRecord.__table__
J = Job.__table__


def _calls(dialect: str, window: Window, kind: PeriodKind | None, *, category: bool = True) -> Any:
    """Ended agent calls in the window, one row each, with their bucket and outcome label.

    Without `category` the calls are not joined to their jobs (every call has one).
    """
    cols: list[ColumnElement[Any]] = []
    if kind is not None:
        cols.append(sql.bucket(dialect, kind, A.c.finished_at).label("period_start"))
    ok = A.c.status == AgentRunStatus.COMPLETED.value
    cols += [
        A.c.agent_name,
        A.c.agent_id,
        *([J.c.category] if category else []),
        sql.outcome(A).label("outcome"),
        A.c.won,
        case((ok, A.c.latency_ms)).label("ok_latency"),
    ]
    source = A.join(D, D.c.id == A.c.distribution_id).join(J, J.c.id == D.c.job_id)
    return (
        select(*cols)
        .select_from(source if category else A)
        .where(sql.in_window(A.c.finished_at, window.start, window.end))
        .where(A.c.status.in_(sql.AGENT_ENDED))
        .subquery("calls")
    )


Categories = Literal["split", "all", "both"]  # per-category rows, '*' rows, or both


def _aggregate(
    conn: Connection,
    sub: Any,
    kind: PeriodKind | None,
    base: list[str],
    categories: Categories,
    aggregates: list[Any],
    pcts: Mapping[str, tuple[str, Sequence[float]]],
) -> pd.DataFrame:
    """Group `sub` by bucket, `base` and category; pcts: prefix -> (value column, quantiles)."""
    pg = conn.dialect.name == "postgresql"
    if categories == "both" and not pg:
        parts = [_aggregate(conn, sub, kind, base, c, aggregates, pcts) for c in ("split", "all")]
        return pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    lead = [sub.c[n] for n in (["period_start"] if kind is not None else []) + base]
    cat = sub.c.category
    keys: list[Any] = [*lead, cat] if categories == "split" else list(lead)
    group: list[Any] = list(keys)
    if categories == "both":  # PostgreSQL: one scan yields the per-category rows and the rollup
        keys = [
            *lead,
            case((func.grouping(cat) == 1, sql.literal(ALL)), else_=cat).label("category"),
        ]
        group = [func.grouping_sets(tuple_(*lead, cat), tuple_(*lead))]
    cols = [*keys, *aggregates]
    if pg:
        cols += [sql.percentiles(sub.c[v], qs).label(p) for p, (v, qs) in pcts.items()]
    result = conn.execute(select(*cols).group_by(*group).order_by(*keys))
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if not pg:
        for prefix, (value, qs) in pcts.items():
            frame = _with_percentiles(conn, frame, sub, keys, value, qs, prefix)
    return _finish_frame(frame, kind, categories == "all", {p: qs for p, (_, qs) in pcts.items()})


def _with_percentiles(
    conn: Connection,
    frame: pd.DataFrame,
    sub: Any,
    keys: list[Any],
    value: str,
    qs: Sequence[float],
    prefix: str,
) -> pd.DataFrame:
    """SQLite: add percentile columns, ranked per group in the database (see percentiles)."""
    result = conn.execute(ranked_statement(keys, sub.c[value], qs))
    names = [k.name for k in keys]
    pct = from_ranked(pd.DataFrame(result.all(), columns=list(result.keys())), names, qs, prefix)
    if frame.empty:
        return frame
    if names:
        return frame.merge(pct, on=names, how="left")
    # One total row: with no values at all (say no ended job had a first result) a cross join
    # with the empty percentiles would drop that row; _finish_frame adds the columns as NaN.
    return frame.join(pct, how="cross") if not pct.empty else frame


def _finish_frame(
    frame: pd.DataFrame,
    kind: PeriodKind | None,
    add_all: bool,
    pcts: dict[str, Sequence[float]],
) -> pd.DataFrame:
    if kind is not None:
        frame["period_start"] = sql.to_utc_series(frame["period_start"])
    if add_all:
        frame["category"] = ALL
    for prefix, qs in pcts.items():
        if prefix in frame.columns:  # PostgreSQL: one array column per measure
            for i, q in enumerate(qs):
                frame[column_name(prefix, q)] = [None if a is None else a[i] for a in frame[prefix]]
            frame.drop(columns=[prefix], inplace=True)
        for q in qs:
            if column_name(prefix, q) not in frame.columns:
                frame[column_name(prefix, q)] = float("nan")
    return frame


def agent_counts(
    conn: Connection, window: Window, kind: PeriodKind | None, *, categories: Categories
) -> pd.DataFrame:
    """Per (bucket, agent, category) counts by outcome, wins and latency stats of completions."""
    sub = _calls(conn.dialect.name, window, kind)
    aggregates: list[Any] = [
        func.max(sub.c.agent_id).label("agent_id"),
        func.count().label("calls"),
        *(sql.count_if(sub.c.outcome == o).label(c) for o, c in sql.OUTCOME_COLUMNS.items()),
        sql.count_if(sub.c.won).label("wins"),
        func.count(sub.c.ok_latency).label("latency_samples"),
        func.sum(sub.c.ok_latency).label("latency_sum_ms"),
    ]
    pcts = {"latency": ("ok_latency", LATENCY_QS)}
    return _aggregate(conn, sub, kind, ["agent_name"], categories, aggregates, pcts)


def _jobs(dialect: str, window: Window, kind: PeriodKind | None) -> Any:
    """Jobs that ended in the window, one row each, with attempts and durations (ms)."""
    per_job = (
        select(
            D.c.job_id,
            func.count().label("attempts"),
            func.min(D.c.started_at).label("first_start"),
            func.min(D.c.first_result_at).label("first_result"),
        )
        .where(D.c.started_at < window.end)  # a job ending in the window started before its end
        .group_by(D.c.job_id)
        .subquery("per_job")
    )
    cols: list[ColumnElement[Any]] = []
    if kind is not None:
        cols.append(sql.bucket(dialect, kind, J.c.finished_at).label("period_start"))
    cols += [
        J.c.category,
        J.c.status,
        func.coalesce(per_job.c.attempts, 0).label("attempts"),
        sql.millis_between(dialect, per_job.c.first_result, per_job.c.first_start).label("ttfr"),
        sql.millis_between(dialect, J.c.finished_at, J.c.created_at).label("e2e"),
    ]
    return (
        select(*cols)
        .select_from(J.outerjoin(per_job, per_job.c.job_id == J.c.id))
        .where(sql.in_window(J.c.finished_at, window.start, window.end))
        .where(J.c.status.in_([s.value for s in JOB_TERMINAL]))
        .where(on_queue())  # queue tasks only: workflow steps have their own figures
        .subquery("ended_jobs")
    )


def job_counts(
    conn: Connection, window: Window, kind: PeriodKind | None, *, categories: Categories
) -> pd.DataFrame:
    """Per (bucket, category) job counts by terminal status, attempts, ttfr and e2e stats."""
    sub = _jobs(conn.dialect.name, window, kind)
    ended = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELLED)
    aggregates: list[Any] = [
        func.count().label("jobs"),
        *(sql.count_if(sub.c.status == s.value).label(s.value.lower()) for s in ended),
        func.sum(sub.c.attempts).label("dispatch_attempts"),
        func.count(sub.c.ttfr).label("ttfr_samples"),
        func.avg(sub.c.ttfr).label("ttfr_mean_ms"),
        func.avg(sub.c.e2e).label("e2e_mean_ms"),
    ]
    pcts = {"ttfr": ("ttfr", DURATION_QS), "e2e": ("e2e", DURATION_QS)}
    return _aggregate(conn, sub, kind, [], categories, aggregates, pcts)


def latency_histogram(conn: Connection, window: Window) -> pd.DataFrame:
    """Completed-call latencies per agent counted into LATENCY_EDGES_MS bins."""
    sub = _calls(conn.dialect.name, window, None)
    lat = sub.c.ok_latency
    bin_no = case(
        *((lat < edge, i) for i, edge in enumerate(LATENCY_EDGES_MS)),
        else_=len(LATENCY_EDGES_MS),
    ).label("bin")
    stmt = (
        select(sub.c.agent_name, bin_no, func.count().label("calls"))
        .where(lat.is_not(None))
        .group_by(sub.c.agent_name, bin_no)
        .order_by(sub.c.agent_name, bin_no)
    )
    result = conn.execute(stmt)
    return pd.DataFrame(result.all(), columns=["agent_name", "bin", "calls"])


def decided_per_hour(conn: Connection, since: dt.datetime, until: dt.datetime) -> pd.DataFrame:
    """Per (agent_id, hour): successes and decided calls; cancelled and blocked left out."""
    sub = _calls(conn.dialect.name, Window(since, until), "hour", category=False)
    stmt = (
        select(
            sub.c.agent_id,
            sub.c.period_start,
            func.count().filter(sub.c.outcome == sql.COMPLETED).label("successes"),
            func.count().label("decided"),
        )
        .where(sub.c.agent_id.is_not(None), sub.c.outcome.not_in(sql.NOT_DECIDED))
        .group_by(sub.c.agent_id, sub.c.period_start)
    )
    result = conn.execute(stmt)
    frame = pd.DataFrame(result.all(), columns=["agent_id", "period_start", "successes", "decided"])
    frame["period_start"] = sql.to_utc_series(frame["period_start"])
    return frame
