"""The dispatch-policy simulation runs end to end at a tiny size (the smoke test of B)."""

from __future__ import annotations

import pytest

from agent_dispatch.domain.hedging import Policy
from benchmarks.dispatch_policies import main, simulate


def test_the_benchmark_prints_every_ranking_and_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--jobs", "240", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    for ranking in ("naive", "today", "new"):
        for policy in ("all-at-once", "hedge ", "hedge+risk", "single"):
            assert any(line.startswith(ranking) and policy in line for line in out.splitlines())
    assert "noticed" in out and "targets" in out


def test_the_same_seed_replays_the_same_run() -> None:
    one = simulate("new", Policy.HEDGE, 200, seed=5)
    two = simulate("new", Policy.HEDGE, 200, seed=5)
    assert (one.successes, one.calls, one.times_ms) == (two.successes, two.calls, two.times_ms)


def test_hedging_calls_far_fewer_agents_than_all_at_once() -> None:
    hedged = simulate("new", Policy.HEDGE, 300, seed=2)
    blunt = simulate("new", Policy.ALL_AT_ONCE, 300, seed=2)
    assert blunt.calls == 3 * blunt.jobs
    assert hedged.calls < 0.6 * blunt.calls
