"""Learned ranking: Thompson sampling tries newcomers without starving proven agents."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from agent_dispatch.domain.posterior import Evidence, Seen
from agent_dispatch.domain.thompson import Candidate, expected_time_ms, rank_candidates

FAIL_COST = 30_000.0


def record(successes: int, failures: int, latency_ms: float = 500.0) -> Evidence:
    ev = Evidence()
    for _ in range(successes):
        ev = ev.observe(Seen.GOOD, latency_ms, 0.0, 0.0)
    for _ in range(failures):
        ev = ev.observe(Seen.BAD, None, 0.0, 0.0)
    return ev


def firsts(cands: list[Candidate], seed: int, draws: int = 2000) -> Counter[str]:
    rng = random.Random(seed)
    return Counter(
        rank_candidates(cands, rng, explore=True, failure_cost_ms=FAIL_COST, intervals=False)[0].key
        for _ in range(draws)
    )


def test_a_newcomer_gets_tried_sometimes_but_the_proven_agent_keeps_most_first_slots() -> None:
    cands = [Candidate("proven", record(95, 5)), Candidate("new")]
    counts = firsts(cands, seed=7)
    assert counts["proven"] > 1600
    assert 50 < counts["new"] < 400  # P(Beta(1,1) draw > ~0.94) is about 6%


def test_a_clearly_bad_agent_is_almost_never_first() -> None:
    cands = [Candidate("good", record(90, 10)), Candidate("bad", record(10, 90))]
    assert firsts(cands, seed=3)["bad"] == 0


def test_without_exploration_the_order_is_the_posterior_mean_and_nobody_explores() -> None:
    cands = [Candidate("new"), Candidate("proven", record(95, 5))]
    for seed in range(20):
        picks = rank_candidates(
            cands, random.Random(seed), explore=False, failure_cost_ms=FAIL_COST
        )
        assert [p.key for p in picks] == ["proven", "new"]
        assert not any(p.exploration for p in picks)


def test_an_exploration_pick_is_flagged_when_sampling_promoted_it() -> None:
    cands = [Candidate("proven", record(95, 5)), Candidate("new")]
    rng = random.Random(11)
    seen = [
        rank_candidates(cands, rng, explore=True, failure_cost_ms=FAIL_COST) for _ in range(200)
    ]
    promoted = [p for picks in seen for p in picks if p.key == "new" and p.rank == 1]
    assert promoted and all(p.exploration for p in promoted)
    assert all(not p.exploration for picks in seen for p in picks if p.key == "proven")


def test_latency_enters_the_score_as_expected_time_to_a_good_answer() -> None:
    assert expected_time_ms(1.0, 200.0, FAIL_COST) == 200.0
    assert expected_time_ms(0.9, 200.0, FAIL_COST) == pytest.approx(3200.0)
    fast = Candidate("fast", record(90, 10, latency_ms=200.0))
    slow = Candidate("slow", record(90, 10, latency_ms=8000.0))
    picks = rank_candidates(
        [slow, fast], random.Random(0), explore=False, failure_cost_ms=FAIL_COST
    )
    assert [p.key for p in picks] == ["fast", "slow"]
    # ...but reliability dominates a modest speed gain.
    flaky_fast = Candidate("flaky", record(50, 50, latency_ms=100.0))
    picks = rank_candidates(
        [flaky_fast, slow], random.Random(0), explore=False, failure_cost_ms=FAIL_COST
    )
    assert picks[0].key == "slow"


def test_picks_carry_a_credible_interval_around_the_mean() -> None:
    (pick,) = rank_candidates(
        [Candidate("a", record(40, 10))], random.Random(0), explore=True, failure_cost_ms=FAIL_COST
    )
    assert pick.low < pick.mean < pick.high
    assert 0.65 < pick.low < 0.8 and 0.8 < pick.high < 0.9


def test_the_same_seed_gives_the_same_order() -> None:
    cands = [Candidate(str(i), record(i, 10 - i)) for i in range(10)]
    one = rank_candidates(cands, random.Random(5), explore=True, failure_cost_ms=FAIL_COST)
    two = rank_candidates(cands, random.Random(5), explore=True, failure_cost_ms=FAIL_COST)
    assert one == two
