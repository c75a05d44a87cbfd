"""A tiny run of benchmarks/dispatch_floor (correctness only: every mode gets every job done
and the table has its rows; no timing is judged here)."""

from __future__ import annotations

import math

import pytest

from benchmarks.dispatch_floor import MODES, parse, run, table

pytestmark = [pytest.mark.flow]


def test_the_dispatch_floor_benchmark_completes_every_job_in_every_mode(
    database_url: str, prefect_harness: None
) -> None:
    tiny = ["--jobs", "4", "--concurrency", "2", "--serial-jobs", "2", "--warmup", "1"]
    args = parse([*tiny, "--database", database_url])
    results = run(args)

    assert list(results) == list(MODES)
    for mode, r in results.items():
        assert (r.completed, r.jobs) == (6, 6), mode
        assert r.span_s > 0 and r.per_job_ms > 0, mode
        # The queue heard COMPLETED after the first answer, as measured at both ends.
        assert math.isfinite(r.told_p50_ms) and r.told_p50_ms > -5, mode
    shown = table(args, results).splitlines()
    assert [line.split()[0] for line in shown[2:]] == list(MODES)
