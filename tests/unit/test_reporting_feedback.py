"""Time-decayed success rate and reputation: the pure math, with hand-computed numbers."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from agent_dispatch.reporting.feedback import Decayed, decayed, decayed_counts, weight

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)


def test_weight_halves_every_half_life() -> None:
    assert weight(dt.timedelta(0), WEEK) == 1.0
    assert weight(WEEK, WEEK) == 0.5
    assert weight(3 * WEEK, WEEK) == 0.125
    assert weight(dt.timedelta(days=3.5), WEEK) == pytest.approx(1 / math.sqrt(2), abs=1e-12)


def test_a_result_from_the_future_counts_as_new() -> None:
    assert weight(-dt.timedelta(hours=2), WEEK) == 1.0


@pytest.mark.parametrize("half_life", [dt.timedelta(0), -WEEK])
def test_half_life_must_be_positive(half_life: dt.timedelta) -> None:
    with pytest.raises(ValueError, match="half-life"):
        weight(dt.timedelta(hours=1), half_life)


def test_recent_success_and_week_old_failure() -> None:
    score = decayed([(NOW, True), (NOW - WEEK, False)], NOW, WEEK)
    assert score == Decayed(successes=1.0, weight=1.5)
    assert score.success_rate == pytest.approx(2 / 3, abs=1e-12)
    # (1 + 0.5 * 5 prior pseudo-results) / (1.5 + 5)
    assert score.reputation == pytest.approx(3.5 / 6.5, abs=1e-12)


def test_older_results_weigh_less() -> None:
    recent_good = decayed([(NOW, True), (NOW - 2 * WEEK, False)], NOW, WEEK)
    recent_bad = decayed([(NOW, False), (NOW - 2 * WEEK, True)], NOW, WEEK)
    assert recent_good.success_rate == pytest.approx(1 / 1.25, abs=1e-12)
    assert recent_bad.success_rate == pytest.approx(0.25 / 1.25, abs=1e-12)
    assert recent_good.reputation > 0.5 > recent_bad.reputation


def test_counts_fold_the_same_as_single_results() -> None:
    at = NOW - dt.timedelta(days=2)
    grouped = decayed_counts([(at, 3, 5), (NOW, 1, 1)], NOW, WEEK)
    single = decayed([(at, True)] * 3 + [(at, False)] * 2 + [(NOW, True)], NOW, WEEK)
    assert grouped.successes == pytest.approx(single.successes, abs=1e-12)
    assert grouped.weight == pytest.approx(single.weight, abs=1e-12)
    w = 0.5 ** (2 / 7)
    assert grouped.success_rate == pytest.approx((3 * w + 1) / (5 * w + 1), abs=1e-12)


def test_no_results_means_the_prior() -> None:
    score = decayed([], NOW, WEEK)
    assert score.success_rate is None
    assert score.reputation == 0.5
