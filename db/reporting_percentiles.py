"""percentile_cont for databases without it (SQLite), computed from a handful of ranked rows.

percentile_cont(q) over n sorted values: position p = q * (n - 1) (0-based), the answer is
v[floor(p)] + (p - floor(p)) * (v[floor(p) + 1] - v[floor(p)]) — the same linear interpolation
as PostgreSQL and numpy's default. The database ranks values per group with window functions
and returns only the two ranks each percentile needs, so Python never holds a group's values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Integer, Select, cast, func, or_, select
from sqlalchemy.sql.elements import ColumnElement


def column_name(prefix: str, q: float) -> str:
    """`latency`, 0.9 -> `latency_p90`; 0.999 -> `latency_p99_9`."""
    pct = f"{q * 100:.10g}".replace(".", "_")
    return f"{prefix}_p{pct}"


def ranks(n: int, q: float) -> tuple[int, int, float]:
    """1-based ranks around position q * (n - 1), and the weight of the upper one."""
    pos = q * (n - 1)
    lo = math.floor(pos)
    return lo + 1, lo + 2, pos - lo


def interpolate(by_rank: Mapping[int, float], n: int, q: float) -> float:
    """percentile_cont(q) from the values at the ranks `ranks(n, q)` names."""
    lo, hi, frac = ranks(n, q)
    low = by_rank[lo]
    return low if frac == 0 else low + frac * (by_rank[hi] - low)


def ranked_statement(keys: Sequence[Any], value: Any, qs: Sequence[float]) -> Select[Any]:
    """Rows (keys..., v, rn, n) holding only the ranks the percentiles in `qs` need."""
    part = list(keys) or None
    inner = (
        select(
            *keys,
            value.label("v"),
            func.row_number().over(partition_by=part, order_by=value).label("rn"),
            func.count().over(partition_by=part).label("n"),
        )
        .where(value.is_not(None))
        .subquery("ranked")
    )
    wanted: list[ColumnElement[bool]] = []
    for q in qs:
        # CAST(real AS INTEGER) truncates on SQLite: floor() of a non-negative position.
        lo = cast(q * (inner.c.n - 1), Integer) + 1
        wanted += [inner.c.rn == lo, inner.c.rn == lo + 1]
    return select(inner).where(or_(*wanted))


def from_ranked(
    frame: pd.DataFrame, keys: list[str], qs: Sequence[float], prefix: str
) -> pd.DataFrame:
    """One row per group (keys + `{prefix}_pNN`) from `ranked_statement` rows."""
    columns = [*keys, *(column_name(prefix, q) for q in qs)]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    groups = frame.groupby(keys, sort=False, dropna=False) if keys else [((), frame)]
    for key, group in groups:
        n = int(group["n"].iloc[0])
        by_rank = {int(r): float(v) for r, v in zip(group["rn"], group["v"], strict=True)}
        key_values = key if isinstance(key, tuple) else (key,)
        rows.append([*key_values, *(interpolate(by_rank, n, q) for q in qs)])
    return pd.DataFrame(rows, columns=columns)
