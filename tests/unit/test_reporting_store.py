"""Period rewrites on SQLite: whole buckets replaced, NaN stored as NULL, stray rows refused."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine

from agent_dispatch.db.reporting_models import ReportAgentPeriod, ReportJobPeriod, ReportWatermark
from agent_dispatch.db.reporting_store import Written, read_agent_periods, records
from agent_dispatch.db.reporting_store import replace_periods as replace_in
from agent_dispatch.domain.periods import Window
from agent_dispatch.reporting.aggregate import AGENT_COLUMNS, JOB_COLUMNS

H0 = dt.datetime(2026, 3, 10, 0, tzinfo=dt.UTC)
H1 = H0 + dt.timedelta(hours=1)
AT = dt.datetime(2026, 3, 11, tzinfo=dt.UTC)


def agent_frame(starts: list[dt.datetime], calls: int) -> pd.DataFrame:
    rows = []
    for s in starts:
        row: dict[str, object] = dict.fromkeys(AGENT_COLUMNS, 0)
        row.update(period_kind="hour", period_start=s, agent_id=None, agent_name="alpha",
                   category="*", calls=calls, success_rate=float("nan"), win_rate=0.5,
                   latency_mean_ms=math.nan, latency_p50_ms=math.nan, latency_p90_ms=math.nan,
                   latency_p99_ms=math.nan, throughput_per_hour=float(calls))  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows, columns=AGENT_COLUMNS)


def no_jobs() -> pd.DataFrame:
    return pd.DataFrame(columns=JOB_COLUMNS)


@pytest.fixture
def engine() -> Iterator[Engine]:
    e = create_engine("sqlite://")
    for model in (ReportAgentPeriod, ReportJobPeriod, ReportWatermark):
        model.__table__.create(e)
    yield e
    e.dispose()


def test_records_turn_nan_into_none() -> None:
    (row,) = records(agent_frame([H0], 3), AT)
    assert row["success_rate"] is None and row["latency_p50_ms"] is None
    assert row["win_rate"] == 0.5 and row["calls"] == 3
    assert row["period_start"] == H0 and type(row["period_start"]) is dt.datetime
    assert row["computed_at"] == AT


def replace_periods(engine: Engine, *args: Any) -> Written:
    with engine.begin() as conn:  # the caller's transaction
        return replace_in(conn, *args)


def test_rewrite_replaces_whole_buckets(engine: Engine) -> None:
    window = Window(H0, H1 + dt.timedelta(hours=1))
    written = replace_periods(engine, "hour", window, agent_frame([H0, H1], 2), no_jobs(), AT)
    assert (written.agent_rows, written.job_rows) == (2, 0)
    # Again for hour 1 only, with new numbers: hour 1 replaced, hour 0 untouched.
    inner = Window(H1 + dt.timedelta(minutes=10), H1 + dt.timedelta(minutes=20))
    written = replace_periods(engine, "hour", inner, agent_frame([H1], 7), no_jobs(), AT)
    assert written.window == Window(H1, H1 + dt.timedelta(hours=1))
    with engine.connect() as conn:
        rows = read_agent_periods(conn, "hour", window)
    assert rows["calls"].tolist() == [2, 7]
    assert rows["success_rate"].isna().all()
    # A bucket with no rows any more is emptied.
    replace_periods(engine, "hour", inner, agent_frame([], 0), no_jobs(), AT)
    with engine.connect() as conn:
        assert read_agent_periods(conn, "hour", window)["calls"].tolist() == [2]


def test_rows_outside_the_buckets_are_refused(engine: Engine) -> None:
    inner = Window(H1, H1 + dt.timedelta(minutes=30))
    with pytest.raises(ValueError, match="outside the hour buckets"):
        replace_periods(engine, "hour", inner, agent_frame([H0], 1), no_jobs(), AT)
    with engine.connect() as conn:
        assert read_agent_periods(conn, "hour", Window(H0, H1 + dt.timedelta(hours=1))).empty
