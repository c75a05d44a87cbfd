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

    paths = ["before", "batched", "1-batch", "after"]
    assert [(c["agents"], c["path"]) for c in cells] == [(n, p) for n in (3, 40) for p in paths]
    for size in (cells[:4], cells[4:]):
        assert {c["decisions"] for c in size} == {6}
        # The same jobs over the same fleet: every path finds agents for the same ones.
        assert len({c["served"] for c in size}) == 1 and size[0]["served"] > 0
        assert size[3]["eligible"] > 0
    assert [(d["agents"], d["completed"]) for d in dispatch] == [(3, 4), (30, 4)]
    out = capsys.readouterr().out
    assert "decisions/s" in out and "vs 3" in out
