"""Ranking score: small-sample correction, reputation, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_dispatch.domain.model import AgentStats
from agent_dispatch.domain.ranking import rank_score, smoothed_success_rate


def record(successes: int, failures: int, reputation: float = 0.5) -> AgentStats:
    return AgentStats(
        runs=successes + failures,
        successes=successes,
        failures=failures,
        reputation=reputation,
    )


NO_HISTORY = AgentStats()


def test_one_lucky_success_ranks_below_long_good_records() -> None:
    lucky = rank_score(record(1, 0))
    assert lucky < rank_score(record(95, 5))
    assert lucky < rank_score(record(40, 10))
    # The raw success rate would say the opposite: 100% beats 95% and 80%.
    assert record(1, 0).success_rate == 1.0
    assert record(95, 5).success_rate == 0.95
    assert record(40, 10).success_rate == 0.8


def test_smoothed_success_rate_values() -> None:
    assert smoothed_success_rate(NO_HISTORY) == 0.5
    assert smoothed_success_rate(record(1, 0)) == pytest.approx(3.5 / 6)
    assert smoothed_success_rate(record(95, 5)) == pytest.approx(97.5 / 105)
    assert smoothed_success_rate(record(0, 1)) == pytest.approx(2.5 / 6)
    # Cancelled runs and timeouts-as-counted-failures use only successes and failures.
    with_cancels = AgentStats(runs=10, successes=1, failures=0, cancelled=9)
    assert smoothed_success_rate(with_cancels) == smoothed_success_rate(record(1, 0))


def test_no_history_ranks_between_good_and_bad_records() -> None:
    fresh = rank_score(NO_HISTORY)
    assert fresh == pytest.approx(0.5)
    assert rank_score(record(40, 10)) > fresh > rank_score(record(10, 40))
    assert rank_score(record(95, 5)) > fresh > rank_score(record(5, 95))
    assert rank_score(record(3, 0)) > fresh > rank_score(record(0, 3))


def test_one_lucky_failure_does_not_sink_an_agent_below_a_bad_record() -> None:
    assert rank_score(record(0, 1)) > rank_score(record(10, 40))


def test_reputation_weighs_in() -> None:
    low = rank_score(record(20, 5, reputation=0.1))
    high = rank_score(record(20, 5, reputation=0.9))
    assert high > low
    assert high - low == pytest.approx(0.4 * 0.8)
    # Reputation can overturn a small edge in success rate.
    assert rank_score(record(19, 6, reputation=0.9)) > rank_score(record(20, 5, reputation=0.1))


def test_reputation_is_clamped_to_the_unit_interval() -> None:
    assert rank_score(record(3, 1, reputation=7.0)) == rank_score(record(3, 1, reputation=1.0))
    assert rank_score(record(3, 1, reputation=-2.0)) == rank_score(record(3, 1, reputation=0.0))


def test_extremes() -> None:
    assert rank_score(record(0, 0, reputation=0.0)) == pytest.approx(0.3)
    assert 0.0 < rank_score(record(0, 10_000, reputation=0.0)) < 0.001
    assert 0.999 < rank_score(record(10_000, 0, reputation=1.0)) < 1.0


counts = st.integers(min_value=0, max_value=10_000)
reputations = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False)


@given(successes=counts, failures=counts, reputation=reputations)
def test_score_is_within_unit_interval(successes: int, failures: int, reputation: float) -> None:
    score = rank_score(record(successes, failures, reputation))
    assert 0.0 <= score <= 1.0
    assert 0.0 <= smoothed_success_rate(record(successes, failures)) <= 1.0


@given(successes=counts, failures=counts, reputation=st.floats(0.0, 1.0))
def test_more_successes_never_hurt_more_failures_never_help(
    successes: int, failures: int, reputation: float
) -> None:
    base = rank_score(record(successes, failures, reputation))
    assert rank_score(record(successes + 1, failures, reputation)) > base
    assert rank_score(record(successes, failures + 1, reputation)) < base


@given(successes=counts, failures=counts, a=st.floats(0.0, 1.0), b=st.floats(0.0, 1.0))
def test_higher_reputation_never_ranks_lower(
    successes: int, failures: int, a: float, b: float
) -> None:
    lo, hi = sorted((a, b))
    better = rank_score(record(successes, failures, hi))
    assert better >= rank_score(record(successes, failures, lo))
