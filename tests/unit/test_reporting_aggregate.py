"""Counts -> metrics on small frames: rates, failure totals, throughput, job rates."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pandas as pd
import pytest

from agent_dispatch.reporting.aggregate import (
    AGENT_COLUMNS,
    JOB_COLUMNS,
    agent_metrics,
    job_metrics,
    job_totals,
)

H0 = dt.datetime(2026, 3, 10, 0, tzinfo=dt.UTC)


def raw_agents() -> pd.DataFrame:
    base = {"period_start": H0, "category": "*", "http_errors": 0, "connection_errors": 0,
            "agent_failures": 0, "latency_p90": None, "latency_p99": None}  # fmt: skip
    return pd.DataFrame([
        {**base, "agent_name": "alpha", "agent_id": "a1", "calls": 10, "completed": 5,
         "timeouts": 1, "invalid_answers": 1, "blocked": 2, "cancelled": 1, "wins": 4,
         "latency_samples": 5, "latency_sum_ms": 5000.0, "latency_p50": 900.0},
        # Only cancelled and blocked calls: no decided call, so no success rate.
        {**base, "agent_name": "beta", "agent_id": None, "calls": 3, "completed": 0,
         "timeouts": 0, "invalid_answers": 0, "blocked": 1, "cancelled": 2, "wins": 0,
         "latency_samples": 0, "latency_sum_ms": None, "latency_p50": None},
        # Only blocked calls: no win rate either.
        {**base, "agent_name": "gamma", "agent_id": "g1", "calls": 2, "completed": 0,
         "timeouts": 0, "invalid_answers": 0, "blocked": 2, "cancelled": 0, "wins": 0,
         "latency_samples": 0, "latency_sum_ms": None, "latency_p50": None},
    ])  # fmt: skip


def test_agent_metrics() -> None:
    metrics = agent_metrics(raw_agents(), "hour", 1.0)
    assert list(metrics.columns) == AGENT_COLUMNS
    out = metrics.set_index("agent_name")
    alpha = out.loc["alpha"]
    assert alpha["failed"] == 2  # timeout + invalid answer; cancelled and blocked are not
    assert alpha["success_rate"] == pytest.approx(5 / 7, abs=1e-12)
    assert alpha["win_rate"] == pytest.approx(4 / 8, abs=1e-12)  # blocked calls never ran
    assert alpha["latency_mean_ms"] == 1000.0
    assert alpha["latency_p50_ms"] == 900.0
    assert math.isnan(alpha["latency_p90_ms"])
    assert alpha["throughput_per_hour"] == 10.0
    beta = out.loc["beta"]
    assert beta["failed"] == 0
    assert math.isnan(beta["success_rate"])
    assert beta["win_rate"] == 0.0
    assert math.isnan(beta["latency_mean_ms"])
    assert beta["agent_id"] is None
    assert math.isnan(out.loc["gamma"]["win_rate"])


def test_day_throughput_is_per_hour() -> None:
    out = agent_metrics(raw_agents(), "day", 24.0)
    assert out["throughput_per_hour"].tolist() == [10 / 24, 3 / 24, 2 / 24]
    assert set(out["period_kind"]) == {"day"}


def raw_jobs() -> pd.DataFrame:
    # PostgreSQL returns SUM(bigint) as Decimal; the metrics must cope.
    return pd.DataFrame([
        {"period_start": H0, "category": "code", "jobs": 4, "completed": 2, "failed": 1,
         "expired": 1, "cancelled": 0, "dispatch_attempts": Decimal(5), "ttfr_samples": 2,
         "ttfr_mean_ms": 1500.0, "e2e_mean_ms": 4000.0, "ttfr_p50": 1500.0, "ttfr_p90": 1900.0,
         "e2e_p50": 3000.0, "e2e_p90": 7000.0},
        {"period_start": H0, "category": "*", "jobs": 5, "completed": 2, "failed": 1,
         "expired": 1, "cancelled": 1, "dispatch_attempts": Decimal(5), "ttfr_samples": 2,
         "ttfr_mean_ms": 1500.0, "e2e_mean_ms": 3300.0, "ttfr_p50": 1500.0, "ttfr_p90": 1900.0,
         "e2e_p50": 3000.0, "e2e_p90": 6000.0},
    ])  # fmt: skip


def test_job_metrics_and_totals() -> None:
    out = job_metrics(raw_jobs(), "hour")
    assert list(out.columns) == JOB_COLUMNS
    code = out[out["category"] == "code"].iloc[0]
    assert (code["completion_rate"], code["failure_rate"], code["expiry_rate"],
            code["cancel_rate"]) == (0.5, 0.25, 0.25, 0.0)  # fmt: skip
    assert code["dispatch_attempts"] == 5
    totals = job_totals(out)
    assert totals["jobs"] == 5
    assert totals["cancel_rate"] == 0.2
    assert totals["e2e_p90_ms"] == 6000.0
    assert isinstance(totals["dispatch_attempts"], int)


def test_job_totals_of_an_empty_window() -> None:
    empty = job_metrics(pd.DataFrame(columns=list(raw_jobs().columns)), "window")
    totals = job_totals(empty)
    assert totals["jobs"] == 0
    assert totals["completed"] == 0
    assert totals["completion_rate"] is None
    assert totals["ttfr_p50_ms"] is None
