"""Dialect-specific SQL pieces: period buckets, durations, percentiles, call outcomes.

PostgreSQL does bucketing (date_trunc) and percentiles (percentile_cont) itself; SQLite buckets
with strftime and its percentiles are computed from a sorted stream (reporting.percentiles).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import (
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    extract,
    func,
    literal_column,
    or_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from agent_dispatch.db.types import UTCDateTime
from agent_dispatch.domain.periods import PeriodKind
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind

COMPLETED = "completed"
# Outcome label -> report column. Cancelled losers and blocked calls are not failures.
OUTCOME_COLUMNS: dict[str, str] = {
    COMPLETED: "completed",
    FailureKind.TIMEOUT.value: "timeouts",
    FailureKind.HTTP_ERROR.value: "http_errors",
    FailureKind.CONNECTION.value: "connection_errors",
    FailureKind.INVALID_ANSWER.value: "invalid_answers",
    FailureKind.AGENT_FAILED.value: "agent_failures",
    FailureKind.BLOCKED.value: "blocked",
    FailureKind.CANCELLED.value: "cancelled",
}
FAILURE_COLUMNS = (
    "timeouts",
    "http_errors",
    "connection_errors",
    "invalid_answers",
    "agent_failures",
)
NOT_DECIDED = (FailureKind.CANCELLED.value, FailureKind.BLOCKED.value)
AGENT_ENDED = tuple(
    s.value
    for s in (
        AgentRunStatus.COMPLETED,
        AgentRunStatus.FAILED,
        AgentRunStatus.CANCELLED,
        AgentRunStatus.TIMEOUT,
    )
)
_SQLITE_FORMAT: dict[PeriodKind, str] = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}


def literal(text: str) -> ColumnElement[Any]:
    # Literals, not bind parameters: PostgreSQL must see the same GROUP BY text as SELECT text.
    return literal_column("'" + text.replace("'", "''") + "'")


def bucket(dialect: str, kind: PeriodKind, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Start of the UTC hour/day holding `column` (a datetime on PostgreSQL, text on SQLite)."""
    if dialect == "postgresql":
        return type_coerce(func.date_trunc(literal(kind), column, literal("UTC")), UTCDateTime)
    return type_coerce(func.strftime(literal(_SQLITE_FORMAT[kind]), column), String)


def to_utc_series(values: pd.Series) -> pd.Series:
    """Bucket values as aware UTC timestamps, whichever dialect produced them."""
    if values.empty:
        return pd.Series(pd.DatetimeIndex([], tz="UTC"), index=values.index)
    # SQLite hands back text ("2026-03-10 14:00:00", UTC); PostgreSQL aware datetimes.
    return pd.to_datetime(values, utc=True, format="ISO8601")


def millis_between(
    dialect: str, later: ColumnElement[Any], earlier: ColumnElement[Any]
) -> ColumnElement[float]:
    if dialect == "postgresql":
        # extract() is numeric on PostgreSQL 14+; percentile_cont wants double precision.
        return cast(extract("epoch", later - earlier) * 1000.0, Float)
    return type_coerce(_epoch_ms(later) - _epoch_ms(earlier), Float)


def _epoch_ms(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQLite: whole milliseconds since 1970, exact (julianday() doubles drift by ~0.05 ms)."""
    whole = cast(func.strftime(literal("%s"), column), Integer) * 1000
    seconds = func.strftime(literal("%f"), column) - cast(
        func.strftime(literal("%S"), column), Integer
    )
    return whole + cast(func.round(seconds * 1000), Integer)


def percentiles(value: ColumnElement[Any], qs: Sequence[float]) -> ColumnElement[Any]:
    """PostgreSQL only: percentile_cont over an array, so one sort serves every percentile."""
    array: ColumnElement[Any] = literal_column(
        "ARRAY[" + ", ".join(repr(float(q)) for q in qs) + "]"
    )
    return type_coerce(func.percentile_cont(array).within_group(value), ARRAY(Float))


def outcome(a: FromClause) -> ColumnElement[str]:
    """Label one ended agent call: 'completed' or the FailureKind value that explains it."""
    kind = a.c.failure_kind
    fk = FailureKind
    return case(
        (a.c.status == AgentRunStatus.COMPLETED.value, literal(COMPLETED)),
        (
            or_(a.c.status == AgentRunStatus.CANCELLED.value, kind == fk.CANCELLED.value),
            literal(fk.CANCELLED.value),
        ),
        (kind == fk.BLOCKED.value, literal(fk.BLOCKED.value)),
        (
            or_(a.c.status == AgentRunStatus.TIMEOUT.value, kind == fk.TIMEOUT.value),
            literal(fk.TIMEOUT.value),
        ),
        (kind == fk.HTTP_ERROR.value, literal(fk.HTTP_ERROR.value)),
        (kind == fk.CONNECTION.value, literal(fk.CONNECTION.value)),
        (kind == fk.INVALID_ANSWER.value, literal(fk.INVALID_ANSWER.value)),
        # FAILED with kind agent_failed, or with no kind recorded: the agent's own failure.
        else_=literal(fk.AGENT_FAILED.value),
    )


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def in_window(column: ColumnElement[Any], start: dt.datetime, end: dt.datetime) -> Any:
    return and_(column >= start, column < end)
