"""A tiny run of benchmarks/dispatch_floor (correctness only: every mode gets every job done
and the table has its rows; no timing is judged here)."""

from __future__ import annotations

import asyncio
import math

import pytest

from benchmarks import cpu_split
from benchmarks.dispatch_floor import MODES, parse, run, table
from benchmarks.floor_paths import floor_batch, plain_call
from benchmarks.floor_sims import running_sims
from tests.support.service_deps import RecordingEvents

pytestmark = [pytest.mark.flow]


@pytest.mark.slow
def test_the_dispatch_floor_benchmark_completes_every_job_in_every_mode(
    database_url: str, prefect_harness: None
) -> None:
    tiny = ["--jobs", "4", "--concurrency", "2", "--serial-jobs", "2", "--warmup", "1"]
    tiny += ["--rounds", "1", "--server-wait", "0"]  # correctness only: no waiting for idle
    args = parse([*tiny, "--database", database_url])
    results = run(args)

    assert list(results) == list(MODES)
    for mode, r in results.items():
        assert (r.completed, r.jobs) == (6, 6), mode
        assert r.span_s > 0 and r.per_job_ms > 0, mode
        # The queue heard COMPLETED after the first answer, as measured at both ends.
        assert math.isfinite(r.told_p50_ms) and r.told_p50_ms > -5, mode
        assert r.cpu_ms["dispatcher"] > 0, mode
    shown = table(args, results).splitlines()
    assert [line.split()[0] for line in shown[2 : 2 + len(MODES)]] == list(MODES)
    assert [line.split()[0] for line in shown[-len(MODES) :]] == list(MODES)  # CPU by process


def test_the_events_floor_announces_what_agent_dispatch_announces_for_a_job() -> None:
    events = RecordingEvents()
    with running_sims() as sims:
        (task_id,) = sims.add(1)
        done = asyncio.run(floor_batch(sims.queue_url, sims.agent_urls, 1, 1, plain_call, events))

    assert done == 1
    by = {(a.agent_name or "job", a.status) for a in events.seen}
    assert {("job", "DISTRIBUTED"), ("job", "IN_PROGRESS"), ("job", "COMPLETED")} <= by
    assert {(a, s) for a in ("a50", "a100", "a200") for s in ("ASSIGNED", "WORKING")} <= by
    assert {("a50", "COMPLETED"), ("a100", "CANCELLED"), ("a200", "CANCELLED")} <= by
    assert len(events.seen) == 12 and {a.job_id for a in events.seen} == {task_id}


def test_cpu_split_counts_this_process() -> None:
    before = cpu_split.snapshot()
    sum(i * i for i in range(300_000))
    used = cpu_split.per_job_ms(before, cpu_split.snapshot(), 1)
    assert used["dispatcher"] > 0 and set(used) == set(cpu_split.ROLES)


def test_settle_waits_while_the_server_works_and_not_at_all_when_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    used = iter([0.0, 0.5, 1.0, 1.0])  # busy for two seconds, then idle
    monkeypatch.setattr(
        cpu_split,
        "snapshot",
        lambda: dict.fromkeys(cpu_split.ROLES, 0.0) | {"prefect server": next(used)},
    )
    assert cpu_split.settle(limit_s=0) == 0.0
    assert 3.0 <= cpu_split.settle(limit_s=10) < 5.0
