"""Aggregated counts -> report metrics (rates, means, throughput); pure pandas, no I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agent_dispatch.db.reporting_sql import FAILURE_COLUMNS, OUTCOME_COLUMNS

AGENT_COUNTS = ["calls", *OUTCOME_COLUMNS.values(), "wins", "latency_samples"]
AGENT_COLUMNS = [
    "period_kind",
    "period_start",
    "agent_id",
    "agent_name",
    "category",
    "calls",
    "completed",
    "failed",
    *FAILURE_COLUMNS,
    "blocked",
    "cancelled",
    "wins",
    "success_rate",
    "win_rate",
    "latency_samples",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "throughput_per_hour",
]
JOB_STATUSES = ["completed", "failed", "expired", "cancelled"]
JOB_COUNTS = ["jobs", *JOB_STATUSES, "dispatch_attempts", "ttfr_samples"]
JOB_COLUMNS = [
    "period_kind",
    "period_start",
    "category",
    *JOB_COUNTS[:-1],
    "completion_rate",
    "failure_rate",
    "expiry_rate",
    "cancel_rate",
    "ttfr_samples",
    "ttfr_mean_ms",
    "ttfr_p50_ms",
    "ttfr_p90_ms",
    "e2e_mean_ms",
    "e2e_p50_ms",
    "e2e_p90_ms",
]


def ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator as float, NaN where the denominator is 0."""
    num = numerator.astype("float64")
    den = denominator.astype("float64")
    return (num / den.where(den != 0)).astype("float64")


def _ints(frame: pd.DataFrame, columns: list[str]) -> None:
    # PostgreSQL hands back SUM(bigint) as Decimal; empty groups come back as NULL.
    for c in columns:
        frame[c] = pd.to_numeric(frame[c]).fillna(0).astype("int64")


def _floats(frame: pd.DataFrame, columns: list[str]) -> None:
    for c in columns:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")


def agent_metrics(raw: pd.DataFrame, period_kind: str, hours: float) -> pd.DataFrame:
    """Report rows for agents; `hours` is the length of each row's period (throughput)."""
    df = raw.copy()
    if "period_start" not in df.columns:
        df["period_start"] = pd.NaT
    df["period_kind"] = period_kind
    _ints(df, AGENT_COUNTS)
    _floats(df, ["latency_sum_ms", "latency_p50", "latency_p90", "latency_p99"])
    df["failed"] = df[list(FAILURE_COLUMNS)].sum(axis=1).astype("int64")
    df["success_rate"] = ratio(df["completed"], df["completed"] + df["failed"])
    df["win_rate"] = ratio(df["wins"], df["calls"] - df["blocked"])
    df["latency_mean_ms"] = ratio(df["latency_sum_ms"], df["latency_samples"])
    for p in ("p50", "p90", "p99"):
        df[f"latency_{p}_ms"] = df[f"latency_{p}"]
    df["throughput_per_hour"] = df["calls"].astype("float64") / hours
    df["agent_id"] = df["agent_id"].astype("object").where(df["agent_id"].notna(), None)
    return df[AGENT_COLUMNS].reset_index(drop=True)


def job_metrics(raw: pd.DataFrame, period_kind: str) -> pd.DataFrame:
    df = raw.copy()
    if "period_start" not in df.columns:
        df["period_start"] = pd.NaT
    df["period_kind"] = period_kind
    _ints(df, JOB_COUNTS)
    measures = ["ttfr_mean_ms", "e2e_mean_ms", "ttfr_p50", "ttfr_p90", "e2e_p50", "e2e_p90"]
    _floats(df, measures)
    for status, rate in zip(
        JOB_STATUSES, ("completion", "failure", "expiry", "cancel"), strict=True
    ):
        df[f"{rate}_rate"] = ratio(df[status], df["jobs"])
    for m in ("ttfr", "e2e"):
        for p in ("p50", "p90"):
            df[f"{m}_{p}_ms"] = df[f"{m}_{p}"]
    return df[JOB_COLUMNS].reset_index(drop=True)


def job_totals(jobs: pd.DataFrame) -> dict[str, float | int | None]:
    """The all-categories row of a window's job metrics as plain values (zeros when empty)."""
    names = [c for c in JOB_COLUMNS if c not in ("period_kind", "period_start", "category")]
    star = jobs[jobs["category"] == "*"]
    if star.empty:
        return {c: 0 if c in JOB_COUNTS else None for c in names}
    row = star.iloc[0]
    return {c: plain(row[c]) for c in names}


def plain(value: object) -> float | int | None:
    """A numpy/pandas scalar as a JSON-friendly Python value (NaN -> None)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.integer | int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if np.isnan(value) else float(value)
    raise TypeError(f"not a number: {value!r}")
