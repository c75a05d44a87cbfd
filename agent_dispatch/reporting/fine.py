"""Roll-ups of the PostgreSQL one-pass fine groups (db.reporting_fine): numpy, no I/O.

Day rows, all-category rows and window totals are sums of the hour groups; their percentiles
are computed here from the values with numpy, using percentile_cont's interpolation, so they
are exact and equal to what `percentile_cont` returns for the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from agent_dispatch.db import reporting_sql as sql
from agent_dispatch.db.reporting_fine import HOUR_S, Fine
from agent_dispatch.db.reporting_models import ALL_CATEGORIES as ALL
from agent_dispatch.db.reporting_percentiles import column_name
from agent_dispatch.db.reporting_queries import DURATION_QS, LATENCY_EDGES_MS, LATENCY_QS
from agent_dispatch.domain.periods import PeriodKind

AGENT_SUMS = ["calls", *sql.OUTCOME_COLUMNS.values(), "wins", "latency_samples", "latency_sum_ms"]
JOB_SUMS = ["jobs", "completed", "failed", "expired", "cancelled", "dispatch_attempts"]


def grouped_order(
    group: np.ndarray[Any, np.dtype[np.int64]],
    by_value: np.ndarray[Any, np.dtype[np.intp]],
    n_groups: int,
) -> np.ndarray[Any, np.dtype[np.intp]]:
    """Indexes sorting the values by group, then by value, given `by_value` (the values'
    argsort): stable 16-bit radix passes over the group ids keep the value order inside
    each group. Several times faster than np.lexsort at millions of values."""
    idx = by_value
    g = group[idx]
    shift = 0
    while True:
        step = np.argsort(((g >> shift) & 0xFFFF).astype(np.uint16), kind="stable")
        idx, g = idx[step], g[step]
        shift += 16
        if (max(n_groups - 1, 0) >> shift) == 0:
            return idx


def percentiles(
    group: np.ndarray[Any, np.dtype[np.int64]],
    values: np.ndarray[Any, np.dtype[np.float64]],
    n_groups: int,
    qs: Sequence[float],
    by_value: np.ndarray[Any, np.dtype[np.intp]] | None = None,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], list[np.ndarray[Any, Any]]]:
    """Per group: count, sum and percentile_cont(q) for each q (NaN for an empty group).

    percentile_cont(q) over n sorted values v: with p = q * (n - 1), the answer is
    v[floor(p)] + (p - floor(p)) * (v[ceil(p)] - v[floor(p)]), as PostgreSQL computes it.
    `by_value` (np.argsort(values); ties may come in any order, they are equal values) can be
    shared by several groupings.
    """
    counts = np.bincount(group, minlength=n_groups).astype(np.int64)
    sums = np.bincount(group, weights=values, minlength=n_groups)
    if by_value is None:
        by_value = np.argsort(values)
    ordered = values[grouped_order(group, by_value, n_groups)]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    present = counts > 0
    out = []
    for q in qs:
        pos = q * (counts - 1).astype(np.float64)
        lo = np.floor(pos)
        frac = pos - lo
        lo_i = np.where(present, starts + lo.astype(np.int64), 0)
        hi_i = np.where(present, starts + np.ceil(pos).astype(np.int64), 0)
        if len(ordered):
            low, high = ordered[lo_i], ordered[hi_i]
            res = low + frac * (high - low)
        else:
            res = np.zeros(n_groups)
        out.append(np.where(present, res, np.nan))
    return counts, sums, out


def _rollup(
    fine: Fine,
    kind: PeriodKind | None,
    keys: list[str],
    sums: list[str],
    measures: dict[str, Sequence[float]],
    maxima: list[str],
) -> pd.DataFrame:
    """Groups of `fine` summed per (period, keys); percentiles of each measure per group."""
    g = fine.groups
    lead: list[str] = []
    frame = g
    if kind is not None:
        period = g["hour"] if kind == "hour" else (g["hour"] // 24) * 24
        frame = g.assign(period=period)
        lead = ["period"]
    by = lead + keys
    if g.empty:
        cols = by + sums + maxima
        empty = pd.DataFrame(columns=cols)
        if kind is not None:
            empty["period"] = empty["period"].astype("int64")
        return _measures_empty(empty, measures)
    # Text maxima (agent_id) as the maximum of sorted codes: pandas' object max is slow.
    labels: dict[str, np.ndarray[Any, Any]] = {}
    for col in maxima:
        codes, uniques = pd.factorize(frame[col], sort=True, use_na_sentinel=True)
        frame = frame.assign(**{f"_{col}": codes})
        labels[col] = np.asarray(uniques, dtype=object)
    coded = [f"_{col}" for col in maxima]
    how = {**dict.fromkeys(sums, "sum"), **dict.fromkeys(coded, "max")}
    if by:
        grouped = frame.groupby(by, sort=True, dropna=False)
        out = grouped[sums + coded].agg(how).reset_index()
        gid = grouped.ngroup().to_numpy().astype(np.int64)
    else:
        totals: pd.Series = frame[sums + coded].agg(how)
        out = totals.to_frame().T
        gid = np.zeros(len(frame), dtype=np.int64)
    for col in maxima:
        picked = out.pop(f"_{col}").to_numpy().astype(np.int64)
        # code -1 (only NULLs in the group) picks the None appended at the end
        choices = np.concatenate([labels[col], np.array([None], dtype=object)])
        out[col] = choices[np.where(picked >= 0, picked, len(choices) - 1)]
    for name, qs in measures.items():
        v = fine.values[name]
        counts, total, pcts = percentiles(gid[v.owner], v.values, len(out), qs, v.by_value)
        out[f"{name}_count"] = counts
        out[f"{name}_sum"] = total
        for q, pct in zip(qs, pcts, strict=True):
            out[column_name(name, q)] = pct
    return out


def _measures_empty(frame: pd.DataFrame, measures: dict[str, Sequence[float]]) -> pd.DataFrame:
    for name, qs in measures.items():
        frame[f"{name}_count"] = pd.Series(dtype="int64")
        frame[f"{name}_sum"] = pd.Series(dtype="float64")
        for q in qs:
            frame[column_name(name, q)] = pd.Series(dtype="float64")
    return frame


def _period_start(frame: pd.DataFrame) -> pd.DataFrame:
    hours = frame.pop("period").astype("int64")
    frame.insert(0, "period_start", pd.to_datetime(hours * HOUR_S, unit="s", utc=True))
    return frame


def agent_counts(fine: Fine, kind: PeriodKind | None, *, split: bool = True) -> pd.DataFrame:
    """What queries.agent_counts returns: per-category rows (when `split`) and '*' rows."""
    parts = []
    for keys in (["agent_name", "category"], ["agent_name"]) if split else (["agent_name"],):
        part = _rollup(fine, kind, keys, AGENT_SUMS, {"latency": LATENCY_QS}, ["agent_id"])
        if "category" not in keys:
            part["category"] = ALL
        parts.append(part.drop(columns=["latency_count", "latency_sum"]))
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    order = (["period"] if kind is not None else []) + ["agent_name", "category"]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    return _period_start(frame) if kind is not None else frame


def job_counts(fine: Fine, kind: PeriodKind | None, *, split: bool = True) -> pd.DataFrame:
    """What queries.job_counts returns: per-category rows (when `split`) and '*' rows."""
    parts = []
    for keys in (["category"], []) if split else ([],):
        part = _rollup(fine, kind, keys, JOB_SUMS, {"ttfr": DURATION_QS, "e2e": DURATION_QS}, [])
        if "category" not in keys:
            part["category"] = ALL
        part["ttfr_samples"] = part["ttfr_count"]
        part["ttfr_mean_ms"] = part["ttfr_sum"] / part["ttfr_count"].where(part["ttfr_count"] > 0)
        part["e2e_mean_ms"] = part["e2e_sum"] / part["e2e_count"].where(part["e2e_count"] > 0)
        parts.append(part.drop(columns=["ttfr_count", "ttfr_sum", "e2e_count", "e2e_sum"]))
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    order = (["period"] if kind is not None else []) + ["category"]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    return _period_start(frame) if kind is not None else frame


def latency_histogram(fine: Fine) -> pd.DataFrame:
    """What queries.latency_histogram returns: completed-call latencies per agent and bin."""
    v = fine.values["latency"]
    names = fine.groups["agent_name"].to_numpy()
    if not len(v.values):
        return pd.DataFrame({"agent_name": [], "bin": [], "calls": []})
    # bin i holds latency < LATENCY_EDGES_MS[i] (first match), the last bin the rest.
    bins = np.searchsorted(np.asarray(LATENCY_EDGES_MS, dtype=np.float64), v.values, "right")
    frame = pd.DataFrame({"agent_name": names[v.owner], "bin": bins})
    counts = frame.groupby(["agent_name", "bin"], sort=True).size().rename("calls")
    return counts.reset_index()
