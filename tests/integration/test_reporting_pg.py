"""Reporting on real PostgreSQL: exact numbers from a known history, idempotent rewrites,
time-decayed feedback, `stats` agreeing with the tables, and SQLite giving the same answers.

The history is tests/support/reporting_history.py; every expected number below was worked out
by hand from it (hour 0 = [B, B+1h), hour 1 = [B+1h, B+2h); job j0 is 20 h earlier).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.cli.main import main
from agent_dispatch.db import reporting_feedback, reporting_store
from agent_dispatch.db.engine import make_engine, make_session_factory
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent
from agent_dispatch.db.reporting_models import ReportAgentPeriod, ReportJobPeriod
from agent_dispatch.db.reporting_reader import ReportingReader
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.periods import KINDS, Window
from agent_dispatch.reporting import compute, incremental
from agent_dispatch.services import stats
from tests.support.postgres import DatabaseFactory
from tests.support.reporting_history import C, Dist, JobSpec, X, add_job, seed_history

pytestmark = [pytest.mark.postgres]

B = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
H1 = B + dt.timedelta(hours=1)
WINDOW = Window(B, B + dt.timedelta(hours=2))
COUNTS = ("calls", "completed", "failed", "timeouts", "http_errors", "connection_errors",
          "invalid_answers", "agent_failures", "blocked", "cancelled", "wins")  # fmt: skip
LATENCY = ("latency_samples", "latency_mean_ms", "latency_p50_ms", "latency_p90_ms",
           "latency_p99_ms")  # fmt: skip
# (bucket, agent) -> counts in COUNTS order, success_rate, win_rate, latency in LATENCY order
AGENT_HOURS: dict[tuple[dt.datetime, str], tuple[Any, ...]] = {
    (B, "alpha"): ((5, 2, 1, 0, 0, 0, 0, 1, 0, 2, 2), 2 / 3, 2 / 5, (2, 1500, 1500, 1900, 1990)),
    (B, "beta"): ((5, 1, 2, 2, 0, 0, 0, 0, 0, 2, 1), 1 / 3, 1 / 5, (1, 4000, 4000, 4000, 4000)),
    (B, "gamma"): ((4, 0, 4, 1, 1, 1, 1, 0, 0, 0, 0), 0.0, 0.0, (0, None, None, None, None)),
    (H1, "alpha"): ((3, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1), 1 / 2, 1 / 3, (1, 1500, 1500, 1500, 1500)),
    (H1, "beta"): ((1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1), 1.0, 1.0, (1, 3000, 3000, 3000, 3000)),
    (H1, "gamma"): ((3, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0), 0.0, 0.0, (0, None, None, None, None)),
    (H1, "delta"): ((1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1), 1.0, 1.0, (1, 600, 600, 600, 600)),
}
AGENT_DAY: dict[str, tuple[Any, ...]] = {
    "alpha": ((8, 3, 2, 0, 0, 0, 1, 1, 0, 3, 3), 3 / 5, 3 / 8, (3, 1500, 1500, 1900, 1990)),
    "beta": ((6, 2, 2, 2, 0, 0, 0, 0, 0, 2, 2), 2 / 4, 2 / 6, (2, 3500, 3500, 3900, 3990)),
    "gamma": ((7, 0, 5, 1, 2, 1, 1, 0, 1, 1, 0), 0.0, 0.0, (0, None, None, None, None)),
    "delta": ((1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1), 1.0, 1.0, (1, 600, 600, 600, 600)),
}
JOB_FIELDS = ("jobs", "completed", "failed", "expired", "cancelled", "dispatch_attempts",
              "ttfr_samples", "ttfr_mean_ms", "ttfr_p50_ms", "ttfr_p90_ms", "e2e_mean_ms",
              "e2e_p50_ms", "e2e_p90_ms")  # fmt: skip
JOB_ROWS: dict[tuple[str, dt.datetime, str], tuple[Any, ...]] = {
    ("hour", B, "*"): (6, 3, 1, 1, 1, 6, 3, 7000 / 3, 2000, 3600, 83000 / 6, 5500, 34000),
    ("hour", B, "code"): (3, 2, 0, 1, 0, 3, 2, 1500, 1500, 1900, 71000 / 3, 6000, 50800),
    ("hour", H1, "*"): (4, 3, 0, 0, 1, 4, 3, 21700, 3000, 49800, 41750, 33000, 88600),
    ("day", B, "*"): (10, 6, 1, 1, 2, 10, 6, 72100 / 6, 2500, 32750, 25000, 5500, 65800),
}


class Transactions:
    """services.stats needs only a unit of work: one over any engine (SQLite included)."""

    def __init__(self, engine: Engine) -> None:
        self.factory = make_session_factory(engine)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.factory)


@pytest.fixture
def seeded(runtime: Runtime) -> Engine:
    with Session(runtime.engine) as session:
        seed_history(session, B)
    return runtime.engine


def write_periods(engine: Engine, window: Window) -> None:
    for kind in KINDS:
        with engine.begin() as conn:
            reader = ReportingReader(conn)
            agents, jobs = (
                compute.agent_periods(reader, kind, window),
                compute.job_periods(reader, kind, window),
            )
            reporting_store.replace_periods(
                conn, kind, window, agents, jobs, dt.datetime.now(dt.UTC)
            )


def table(engine: Engine, model: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(select(model.__table__))
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def agent_row(frame: pd.DataFrame, kind: str, start: dt.datetime, agent: str, cat: str = "*"
              ) -> pd.Series:  # fmt: skip
    hit = frame[(frame.period_kind == kind) & (frame.period_start == start)
                & (frame.agent_name == agent) & (frame.category == cat)]  # fmt: skip
    assert len(hit) == 1, f"{len(hit)} rows for {kind} {start} {agent} {cat}"
    return hit.iloc[0]


def check_agent(row: pd.Series, expected: tuple[Any, ...]) -> None:
    counts, success, win, latency = expected
    assert tuple(int(row[c]) for c in COUNTS) == counts
    assert row["success_rate"] == pytest.approx(success, abs=1e-12)
    assert row["win_rate"] == pytest.approx(win, abs=1e-12)
    got = tuple(None if pd.isna(row[c]) else float(row[c]) for c in LATENCY)
    assert got == pytest.approx(latency, abs=1e-9)


def test_agent_rows_per_hour_and_day_are_exact(seeded: Engine) -> None:
    write_periods(seeded, WINDOW)
    rows = table(seeded, ReportAgentPeriod)
    assert (rows.period_kind == "hour").sum() == 18  # 7 all-category rows + 11 per category
    assert (rows.period_kind == "day").sum() == 11
    for (start, agent), expected in AGENT_HOURS.items():
        check_agent(agent_row(rows, "hour", start, agent), expected)
    for agent, expected in AGENT_DAY.items():
        check_agent(agent_row(rows, "day", B, agent), expected)
    check_agent(
        agent_row(rows, "hour", B, "alpha", "code"),
        ((2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2), 1.0, 1.0, (2, 1500, 1500, 1900, 1990)),
    )
    check_agent(
        agent_row(rows, "hour", B, "beta", "code"),
        ((3, 0, 2, 2, 0, 0, 0, 0, 0, 1, 0), 0.0, 0.0, (0, None, None, None, None)),
    )
    check_agent(
        agent_row(rows, "hour", B, "gamma", "text"),
        ((1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0), 0.0, 0.0, (0, None, None, None, None)),
    )
    assert pd.isna(agent_row(rows, "day", B, "delta")["agent_id"])  # removed, history kept
    assert agent_row(rows, "hour", H1, "alpha")["throughput_per_hour"] == 3.0
    assert agent_row(rows, "day", B, "alpha")["throughput_per_hour"] == pytest.approx(8 / 24)
    # Per-category rows add up to the all-categories row of the same bucket.
    per_cat = rows[rows.category != "*"].groupby(["period_kind", "period_start", "agent_name"])
    star = rows[rows.category == "*"].set_index(["period_kind", "period_start", "agent_name"])
    pd.testing.assert_frame_equal(
        per_cat[list(COUNTS)].sum().sort_index(), star[list(COUNTS)].sort_index(), check_dtype=False
    )


def test_job_rows_are_exact(seeded: Engine) -> None:
    write_periods(seeded, WINDOW)
    rows = table(seeded, ReportJobPeriod)
    assert sorted(rows.groupby("period_kind").size().items()) == [("day", 3), ("hour", 6)]
    for (kind, start, cat), expected in JOB_ROWS.items():
        hit = rows[(rows.period_kind == kind) & (rows.period_start == start)
                   & (rows.category == cat)]  # fmt: skip
        assert len(hit) == 1
        got = tuple(float(hit.iloc[0][f]) for f in JOB_FIELDS)
        assert got == pytest.approx(expected, abs=1e-6), (kind, start, cat)
    h0 = rows[(rows.period_kind == "hour") & (rows.period_start == B) & (rows.category == "*")]
    assert h0.iloc[0][["completion_rate", "failure_rate", "expiry_rate", "cancel_rate"]
                      ].tolist() == pytest.approx([0.5, 1 / 6, 1 / 6, 1 / 6])  # fmt: skip


def snapshot(engine: Engine) -> list[pd.DataFrame]:
    out = []
    for model in (ReportAgentPeriod, ReportJobPeriod):
        frame = table(engine, model).drop(columns=["id", "computed_at"])
        keys = [c for c in ("period_kind", "period_start", "agent_name", "category")
                if c in frame.columns]  # fmt: skip
        out.append(frame.sort_values(keys).reset_index(drop=True))
    return out


def test_rerunning_a_period_replaces_it(seeded: Engine) -> None:
    write_periods(seeded, WINDOW)
    first = snapshot(seeded)
    write_periods(seeded, WINDOW)
    # A narrower window inside the same hours rewrites the same whole buckets.
    write_periods(seeded, Window(B + dt.timedelta(minutes=30), B + dt.timedelta(minutes=90)))
    for before, after in zip(first, snapshot(seeded), strict=True):
        pd.testing.assert_frame_equal(before, after)
    # A stale row in a bucket being rewritten disappears; a new call is counted once.
    with seeded.begin() as conn:
        conn.execute(insert(ReportAgentPeriod.__table__), [{
            "period_kind": "hour", "period_start": H1, "agent_name": "ghost", "category": "*",
            **dict.fromkeys((*COUNTS, "latency_samples"), 1), "throughput_per_hour": 1.0,
            "computed_at": B}])  # fmt: skip
    with Session(seeded) as session:
        alpha = session.scalars(select(Agent).where(Agent.name == "alpha")).one()
        extra = JobSpec(
            "j12",
            "code",
            "COMPLETED",
            6000,
            6001,
            [Dist(6000, "COMPLETED", [C("alpha", 100, True)], 6000.1)],
        )
        add_job(session, extra, B, {"alpha": alpha.id})
        session.commit()
    write_periods(seeded, Window(H1, H1 + dt.timedelta(minutes=5)))
    rows = table(seeded, ReportAgentPeriod)
    assert not (rows.agent_name == "ghost").any()
    assert agent_row(rows, "hour", H1, "alpha")["calls"] == 4
    assert agent_row(rows, "hour", B, "alpha")["calls"] == 5
    assert agent_row(rows, "day", B, "alpha")["calls"] == 9
    assert agent_row(rows, "day", B, "alpha")["wins"] == 4
    assert rows.duplicated(["period_kind", "period_start", "agent_name", "category"]).sum() == 0


def decayed_agents(engine: Engine) -> dict[str, tuple[float, float | None]]:
    with Session(engine) as session:
        return {a.name: (a.reputation, a.success_rate) for a in session.scalars(select(Agent))}


def test_feedback_weighs_older_results_less(seeded: Engine) -> None:
    now = B + dt.timedelta(hours=2)
    short = stats.feedback_scores(Transactions(seeded), now, dt.timedelta(hours=1))
    assert (
        stats.write_feedback(Transactions(seeded), short) == 3
    )  # delta was removed; its rows have no agent
    got = decayed_agents(seeded)
    # Per-hour counts are dated mid-hour: hour 0 is 1.5 h old, hour 1 0.5 h, j0 21.5 h.
    w0, w1, old = 2**-1.5, 2**-0.5, 2**-21.5
    assert got["beta"][1] == pytest.approx(round((w0 + w1) / (3 * w0 + w1), 6), abs=1e-9)
    assert got["beta"][1] == pytest.approx(0.6, abs=1e-6)
    assert got["beta"][0] == pytest.approx((w0 + w1 + 2.5) / (3 * w0 + w1 + 5), abs=1e-6)
    assert got["alpha"][1] == pytest.approx((2 * w0 + w1 + old) / (3 * w0 + 2 * w1 + old),
                                            abs=1e-6)  # fmt: skip
    assert got["gamma"] == pytest.approx((2.5 / (4 * w0 + w1 + 5), 0.0), abs=1e-6)
    assert "delta" not in got  # removed: its rows (agent_id NULL) score nobody

    week = stats.feedback_scores(Transactions(seeded), now, dt.timedelta(days=7))
    stats.write_feedback(Transactions(seeded), week)
    slow = decayed_agents(seeded)
    v0, v1 = 2 ** (-1.5 / 168), 2 ** (-0.5 / 168)
    assert slow["beta"][1] == pytest.approx((v0 + v1) / (3 * v0 + v1), abs=1e-6)
    # beta's one recent success counts for more when old results fade fast.
    assert got["beta"][1] > slow["beta"][1] > 0.5
    assert {f.agent_id for f in week} == {f.agent_id for f in short}


def test_stats_agrees_with_the_tables(seeded: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    write_periods(seeded, WINDOW)
    since = (B - dt.timedelta(hours=1)).isoformat()
    assert main(["stats", "--json", "--since", since]) == 0
    doc = json.loads(capsys.readouterr().out)
    j, c = doc["jobs"], doc["calls"]
    assert (j["finished"], j["completed"], j["failed"], j["expired"], j["cancelled"]) == (
        10, 6, 1, 1, 2)  # fmt: skip
    assert (j["success_rate"], j["error_rate"]) == pytest.approx((0.6, 0.2))
    assert (c["calls"], c["completed"], c["failed"], c["cancelled"], c["blocked"]) == (
        22, 6, 9, 6, 1)  # fmt: skip
    assert c["success_rate"] == pytest.approx(6 / 15)
    assert c["avg_execution_ms"] == pytest.approx(12100 / 6)
    assert [a["agent"] for a in doc["agents"]] == ["alpha", "beta", "delta", "gamma"]

    rows = table(seeded, ReportAgentPeriod)
    for a in doc["agents"]:
        day = agent_row(rows, "day", B, a["agent"])
        hours = rows[(rows.period_kind == "hour") & (rows.category == "*")
                     & (rows.agent_name == a["agent"])]  # fmt: skip
        for field in COUNTS:
            assert a[field] == int(day[field]) == int(hours[field].sum()), (a["agent"], field)
        for field in ("success_rate", "win_rate", *LATENCY[1:]):
            want = None if pd.isna(day[field]) else pytest.approx(float(day[field]))
            assert a[field] == want, (a["agent"], field)
    job_day = table(seeded, ReportJobPeriod).query("period_kind == 'day' and category == '*'")
    assert j["finished"] == int(job_day["jobs"].sum())
    assert j["time_to_first_result_p50_ms"] == pytest.approx(float(job_day.iloc[0]["ttfr_p50_ms"]))
    assert j["avg_end_to_end_ms"] == pytest.approx(float(job_day.iloc[0]["e2e_mean_ms"]))

    assert main(["stats", "--since", since]) == 0
    text = capsys.readouterr().out
    assert "jobs: 10 finished — 6 completed, 1 failed, 1 expired, 2 cancelled" in text
    assert "job success rate 60.0%, error rate 20.0%" in text
    assert all(name in text for name in ("alpha", "beta", "gamma", "delta"))


def test_stats_on_an_empty_database(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["window"]["start"] is None
    assert doc["jobs"]["finished"] == 0 and doc["calls"]["calls"] == 0 and doc["agents"] == []
    assert main(["stats"]) == 0
    assert "no agent calls ended in this window" in capsys.readouterr().out


def test_sqlite_gives_the_same_numbers(seeded: Engine, tmp_path: Path) -> None:
    lite = make_engine(f"sqlite:///{tmp_path / 'lite.db'}")
    upgrade(lite)
    with Session(lite) as session:
        seed_history(session, B)
    wide = Window(B - dt.timedelta(days=1), B + dt.timedelta(hours=3))
    for kind in KINDS:
        for fn, keys in ((compute.agent_periods, ["period_start", "agent_name", "category"]),
                         (compute.job_periods, ["period_start", "category"])):  # fmt: skip
            frames = []
            for engine in (seeded, lite):
                with engine.connect() as conn:
                    frame = fn(ReportingReader(conn), kind, wide)
                frame = frame.drop(columns=["agent_id"], errors="ignore")
                frames.append(frame.sort_values(keys).reset_index(drop=True))
            assert len(frames[0]) > 0
            pd.testing.assert_frame_equal(frames[0], frames[1], check_dtype=False, rtol=1e-9)
    overviews = []
    for engine in (seeded, lite):
        overviews.append(stats.window_overview(Transactions(engine), wide))
    assert overviews[0].jobs == pytest.approx(overviews[1].jobs)
    pd.testing.assert_frame_equal(overviews[0].histogram, overviews[1].histogram,
                                  check_dtype=False)  # fmt: skip
    pd.testing.assert_frame_equal(overviews[0].agents.drop(columns=["agent_id"]),
                                  overviews[1].agents.drop(columns=["agent_id"]),
                                  check_dtype=False, rtol=1e-9)  # fmt: skip
    with lite.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Agent)) == 3
    lite.dispose()


def run_plan(engine: Engine, plan: incremental.Plan, now: dt.datetime) -> None:
    """What the flow does with a plan: one pass, then each kind replaced (and marked)."""
    periods, _ = stats.aggregate_periods(Transactions(engine), plan)
    for part in periods:
        stats.write_periods(Transactions(engine), part, now, plan.incremental)


def marks(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {str(k): v for k, v in reporting_store.read_watermarks(conn).items()}


def test_incremental_run_recomputes_only_the_new_buckets(
    seeded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_incremental(seeded, monkeypatch)


def test_incremental_run_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lite = make_engine(f"sqlite:///{tmp_path / 'lite.db'}")
    upgrade(lite)
    with Session(lite) as session:
        seed_history(session, B)
    try:
        check_incremental(lite, monkeypatch)
    finally:
        lite.dispose()


def check_incremental(seeded: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # First incremental run, 10 minutes into hour 2: no watermark yet, so the default
    # lookback (48 h: all of the history, j0 included).
    now1 = B + dt.timedelta(hours=2, minutes=10)
    first = stats.plan_run(Transactions(seeded), None, now1, incremental.SETTLE)
    assert first.previous == {"hour": None, "day": None}
    run_plan(seeded, first, now1)
    m1 = marks(seeded)
    assert m1["hour"]["watermark"] == now1 and m1["day"]["watermark"] == now1
    assert m1["hour"]["source_rows"] == 23 + 11  # every ended call and job
    assert m1["hour"]["covered_since"] == now1.replace(minute=0) - dt.timedelta(hours=48)
    # A job ends in hour 2, after that run.
    with Session(seeded) as session:
        ids = {a.name: a.id for a in session.scalars(select(Agent))}
        extra = JobSpec("j12", "code", "COMPLETED", 7200 + 900, 7200 + 910, [
            Dist(7200 + 900, "COMPLETED", [C("alpha", 300, True), X("beta", 300)],
                 7200 + 900.3)])  # fmt: skip
        add_job(session, extra, B, ids)
        session.commit()
    now2 = B + dt.timedelta(hours=2, minutes=30)
    second = stats.plan_run(Transactions(seeded), None, now2, incremental.SETTLE)
    assert second.previous["hour"] == now1
    # watermark - settle = hour 2 + 5 min: only hour 2 (and the day holding it).
    assert second.windows["hour"] == Window(B + dt.timedelta(hours=2), B + dt.timedelta(hours=3))
    assert second.windows["day"] == Window(B, B + dt.timedelta(days=1))
    run_plan(seeded, second, now2)
    m2 = marks(seeded)["hour"]
    assert (m2["watermark"], m2["buckets"], m2["window_start"]) == (
        now2, 1, B + dt.timedelta(hours=2))  # fmt: skip
    assert m2["source_rows"] == 2 + 1  # the two new calls and the new job
    assert (m2["agent_rows"], m2["job_rows"]) == (4, 2)  # alpha, beta x ('*', code)
    rows = table(seeded, ReportAgentPeriod)
    hours = rows[rows.period_kind == "hour"]
    # Hours 0 and 1 (and j0's hour) were not recomputed: still the first run's rows.
    assert set(hours[hours.period_start < B + dt.timedelta(hours=2)].computed_at) == {now1}
    assert set(hours[hours.period_start == B + dt.timedelta(hours=2)].computed_at) == {now2}
    assert agent_row(rows, "hour", B + dt.timedelta(hours=2), "alpha")["calls"] == 1
    assert agent_row(rows, "day", B, "alpha")["calls"] == 9
    assert agent_row(rows, "day", B, "beta")["cancelled"] == 3

    # Ranking feedback now reads the hour rows (they cover the horizon) — same scores as
    # from the execution rows; with the watermark behind `now`, the hour rows up to the
    # watermark's hour and the execution rows after it — the same scores again.
    later = now2 + dt.timedelta(minutes=40)  # the watermark (now2) is in the hour before
    for half_life in (dt.timedelta(hours=1), dt.timedelta(days=7)):
        with seeded.connect() as conn:
            assert reporting_feedback.reported_until(conn, now2 - 10 * half_life, now2) == now2
            assert reporting_feedback.reported_until(conn, B, later) == B + dt.timedelta(hours=2)
        for at in (now2, later):
            from_reports = stats.feedback_scores(Transactions(seeded), at, half_life)
            with monkeypatch.context() as patched:
                patched.setattr(reporting_feedback, "reported_until", lambda *_: None)
                from_rows = stats.feedback_scores(Transactions(seeded), at, half_life)
            assert [(f.agent_id, f.reputation, f.success_rate) for f in from_reports] == [
                (f.agent_id, f.reputation, f.success_rate) for f in from_rows]  # fmt: skip
            assert len(from_rows) == 3

    # The tables equal a full recompute of the same data.
    incremental_tables = snapshot(seeded)
    everything = Window(B - dt.timedelta(days=1), B + dt.timedelta(hours=3))
    run_plan(seeded, incremental.explicit(everything), now2)
    for got, full in zip(incremental_tables, snapshot(seeded), strict=True):
        pd.testing.assert_frame_equal(got, full, check_exact=False, rtol=1e-12)
    # An explicit period is replaced, but the watermark stays where the last run left it.
    after_explicit = marks(seeded)["hour"]
    assert (after_explicit["watermark"], after_explicit["buckets"]) == (now2, 1)

    # A third run with nothing new recomputes the same hour from the same rows.
    third = stats.plan_run(Transactions(seeded), None, now2 + dt.timedelta(minutes=1),
                           incremental.SETTLE)  # fmt: skip
    run_plan(seeded, third, now2 + dt.timedelta(minutes=1))
    for before, after in zip(incremental_tables, snapshot(seeded), strict=True):
        pd.testing.assert_frame_equal(before, after, check_exact=False, rtol=1e-12)


@pytest.mark.slow
def test_benchmark_command_smoke(pg_factory: DatabaseFactory) -> None:
    """`python -m benchmarks.analytics_scale` on a tiny history: both runs, same tables; with
    --before-src (here this same tree) the before runs come first on the same database."""
    from benchmarks.analytics_scale import main as bench

    root = str(Path(__file__).resolve().parents[2])
    results = bench(["--rows", "3000", "--days", "2", "--admin-url", pg_factory.admin,
                     "--before-src", root])  # fmt: skip
    assert [(r["code"], r["mode"]) for r in results] == [
        ("before", "full"),
        ("before", "incremental"),
        ("after", "full"),
        ("after", "incremental"),
    ]
    full, step = results[2:]
    assert full["rows"] == step["rows"] == 3000
    assert full["rows_read"] == 3000 + 1000  # every call and job, in the day tables
    assert 0 < step["rows_read"] < full["rows_read"]
    assert full["report_rows"] > step["report_rows"] > 0
    assert all(r["same_as_full"] and r["same_as_before"] for r in results)
    assert full["peak_rss_mb"] > 0


def test_report_rows_survive_copy_exactly(runtime: Runtime) -> None:
    """PostgreSQL writes go through COPY text: awkward names, NULLs and floats come back."""
    from agent_dispatch.reporting.aggregate import AGENT_COLUMNS, JOB_COLUMNS

    names = ["tab\there", "back\\slash", "new\nline", 'quote"d', "ünïcode ✓"]
    row: dict[str, Any] = dict.fromkeys(AGENT_COLUMNS, 0)
    rows = []
    for i, name in enumerate(names):
        rows.append({**row, "period_kind": "hour", "period_start": B, "agent_id": None if i else
                     "id-0", "agent_name": name, "category": "*", "calls": 2**31 - 1,
                     "success_rate": 0.1 + 0.2, "win_rate": float("nan"),
                     "latency_mean_ms": 1 / 3, "latency_p50_ms": 1e-300, "latency_p90_ms": None,
                     "latency_p99_ms": 123456789.123456789,
                     "throughput_per_hour": 2.0})  # fmt: skip
    frame = pd.DataFrame(rows, columns=AGENT_COLUMNS)
    with runtime.engine.begin() as conn:
        reporting_store.replace_periods(conn, "hour", Window(B, H1), frame,
                                        pd.DataFrame(columns=JOB_COLUMNS), B)  # fmt: skip
    got = table(runtime.engine, ReportAgentPeriod).sort_values("agent_name")
    assert got["agent_name"].tolist() == sorted(names)
    first = got.set_index("agent_name").loc["tab\there"]
    assert first["agent_id"] == "id-0" and first["calls"] == 2**31 - 1
    assert first["success_rate"] == 0.1 + 0.2 and first["latency_mean_ms"] == 1 / 3
    assert first["latency_p50_ms"] == 1e-300 and first["latency_p99_ms"] == 123456789.123456789
    assert pd.isna(first["win_rate"]) and pd.isna(first["latency_p90_ms"])
    assert got["agent_id"].isna().sum() == 4


def test_hour_buckets_split_at_the_exact_hour(seeded: Engine) -> None:
    """The one pass numbers hours with integer arithmetic on the epoch: a call that ends
    1 µs before an hour is in the hour before, one ending on the hour in the new one."""
    from agent_dispatch.db import reporting_fine

    edge = 7200  # B + 2 h
    with Session(seeded) as session:
        ids = {a.name: a.id for a in session.scalars(select(Agent))}
        for key, start in (("before", edge - 0.000001), ("on", edge)):
            spec = JobSpec(key, "code", "COMPLETED", start, start,
                           [Dist(start, "COMPLETED", [C("alpha", 0, True)], start)])  # fmt: skip
            add_job(session, spec, B, ids)
        session.commit()
    with seeded.begin() as conn:
        fine = reporting_fine.fetch_calls(conn, Window(H1, B + dt.timedelta(hours=3)))
    # one fine group per (hour, agent, category): whole hours, not fractions of hours
    assert not fine.groups.duplicated(["hour", "agent_name", "category"]).any()
    groups = fine.groups[fine.groups.agent_name == "alpha"].groupby("hour")["calls"].sum()
    hour = int(B.timestamp()) // 3600
    assert groups.to_dict() == {hour + 1: 3 + 1, hour + 2: 1}
