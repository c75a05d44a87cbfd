"""`python -m benchmarks.matching_scale` at tiny sizes: every cell runs and the dispatch rows
complete every job (correctness only; the figures live in the README)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.postgres import DatabaseFactory

pytestmark = [pytest.mark.postgres]


@pytest.mark.slow
def test_benchmark_command_smoke(
    pg_factory: DatabaseFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.matching_scale import main as bench

    cells, dispatch = bench(
        ["--sizes", "3,40", "--decisions", "6", "--seconds", "30", "--concurrency", "4",
         "--dispatch-jobs", "4", "--dispatch-fleet", "30", "--dispatch-rounds", "1",
         "--admin-url", pg_factory.admin]
    )  # fmt: skip

    paths = ["before", "batched", "1-batch", "after", "2-procs"]
    assert [(c["agents"], c["path"]) for c in cells] == [(n, p) for n in (3, 40) for p in paths]
    for size in (cells[:5], cells[5:]):
        assert {c["decisions"] for c in size} == {6}
        # The same jobs over the same fleet: every path finds agents for the same ones.
        assert len({c["served"] for c in size}) == 1 and size[0]["served"] > 0
        assert size[3]["eligible"] > 0
    assert [(d["agents"], d["completed"]) for d in dispatch] == [(3, 4), (30, 4)]
    out = capsys.readouterr().out
    assert "decisions/s" in out and "vs 3" in out


def test_the_benchmark_fleet_carries_what_ranking_learned_per_category() -> None:
    import random

    from agent_dispatch.db.types import utcnow
    from benchmarks.matching_scale import agent_row, evidence_rows

    rng, now = random.Random(3), utcnow()
    fleet = [agent_row(rng, i, now) for i in range(200)]
    rows = list(evidence_rows(fleet, now))
    # One row per category of each agent with a record, none for an agent without one.
    assert sorted((r[0], r[1]) for r in rows) == sorted(
        (a[0], c) for a in fleet if a[10] for c in a[4].obj
    )
    for _, _, good, bad, censored, lat_n, log_sum, log_sq, at in rows:
        assert good >= 0 and bad >= 0 and 0 <= censored <= good and lat_n == good
        assert log_sq * lat_n >= log_sum * log_sum - 1e-6  # a variance of at least zero
        assert dt.timedelta(0) <= now - at <= dt.timedelta(hours=2)
