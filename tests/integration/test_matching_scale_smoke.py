"""`python -m benchmarks.matching_scale` at tiny sizes: every cell runs and the dispatch rows
complete every job (correctness only; the figures live in the README)."""

from __future__ import annotations

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

    assert [(c["agents"], c["path"]) for c in cells] == [
        (3, "before"), (3, "batched"), (3, "after"),
        (40, "before"), (40, "batched"), (40, "after"),
    ]  # fmt: skip
    for before, batched, after in zip(cells[::3], cells[1::3], cells[2::3], strict=True):
        assert before["decisions"] == batched["decisions"] == after["decisions"] == 6
        # The same jobs over the same fleet: every path finds agents for the same ones.
        assert before["served"] == batched["served"] == after["served"] > 0
        assert after["eligible"] > 0
    assert [(d["agents"], d["completed"]) for d in dispatch] == [(3, 4), (30, 4)]
    out = capsys.readouterr().out
    assert "decisions/s" in out and "vs 3" in out
