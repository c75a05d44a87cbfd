"""Smoke runs of the backlog and memory benchmarks at tiny sizes: correctness only, no timing."""

from __future__ import annotations

import pytest

from tests.support.postgres import DatabaseFactory

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def harness_url(prefect_harness: None) -> str:
    """The suite's Prefect server: the runs report there instead of a server of their own
    (a `prefect server start` costs tens of seconds of CPU on a loaded 2-core machine)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url
    return str(url)


def test_unserved_backlog_benchmark_leaves_every_task_waiting_with_its_reason(
    pg_factory: DatabaseFactory, harness_url: str
) -> None:
    from benchmarks.unserved_backlog import main as bench

    rows = bench(
        ["--sizes", "15", "--admin-url", pg_factory.admin, "--prefect-api-url", harness_url]
    )

    # The benchmark's own check raised if any task was taken, lost or left without a reason.
    ((label, result),) = rows
    assert label == "after"
    assert result["jobs"] == result["explained"] == result["queue_open"] == 15
    assert len(result["seconds"]) == 2


def test_memory_benchmark_completes_every_job_and_reads_each_runs_peak(
    pg_factory: DatabaseFactory, harness_url: str
) -> None:
    from benchmarks.memory_run import main as bench

    # One size per mode: each run is a child process of its own, seconds to start here.
    rows = bench(["--jobs", "4", "--modes", "traced,lean", "--admin-url", pg_factory.admin,
                  "--prefect-api-url", harness_url])  # fmt: skip

    # Each run had to complete all of its jobs (the benchmark raises otherwise).
    assert [(r["mode"], r["jobs"]) for r in rows] == [("traced", 4), ("lean", 4)]
    assert all(50 < r["peak_rss_mb"] < 4096 for r in rows)  # a whole interpreter, in MB
