"""Per-(agent, category) evidence: decay, censoring, latency estimates and Beta intervals."""

from __future__ import annotations

import math

import pytest

from agent_dispatch.domain.betadist import beta_cdf, beta_interval, beta_quantile, wilson_interval
from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.posterior import Evidence, Prior, Seen, beta_params, seen_of
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind

HOUR = 3600.0


def test_a_cancelled_loser_is_censored_not_failed() -> None:
    loser = AgentOutcome(
        AgentRunStatus.CANCELLED, failure_kind=FailureKind.CANCELLED, latency_ms=800.0
    )
    assert seen_of(loser) is Seen.CENSORED
    ev = Evidence().observe(Seen.CENSORED, 800.0, now=0.0, half_life_s=HOUR)
    assert (ev.successes, ev.failures, ev.censored) == (0.0, 0.0, 1.0)


def test_refused_calls_say_nothing_and_failures_and_timeouts_are_bad() -> None:
    blocked = AgentOutcome(AgentRunStatus.FAILED, failure_kind=FailureKind.BLOCKED)
    timeout = AgentOutcome(AgentRunStatus.TIMEOUT, failure_kind=FailureKind.TIMEOUT)
    assert seen_of(blocked) is None
    assert seen_of(timeout) is Seen.BAD
    assert seen_of(AgentOutcome(AgentRunStatus.COMPLETED, latency_ms=5.0)) is Seen.GOOD


def test_evidence_halves_every_half_life() -> None:
    ev = Evidence()
    for _ in range(8):
        ev = ev.observe(Seen.GOOD, 100.0, now=0.0, half_life_s=HOUR)
    later = ev.decayed(2 * HOUR, HOUR)
    assert later.successes == pytest.approx(2.0)
    assert later.lat_n == pytest.approx(2.0)
    # The latency fit is made of ratios of decayed sums: decay leaves it unchanged.
    assert later.mean_latency_ms() == pytest.approx(100.0)


def test_recent_failures_outweigh_old_successes_after_a_few_half_lives() -> None:
    ev = Evidence()
    for i in range(50):
        ev = ev.observe(Seen.GOOD, 100.0, now=float(i), half_life_s=60.0)
    for i in range(10):
        ev = ev.observe(Seen.BAD, None, now=300.0 + i, half_life_s=60.0)
    a, b = beta_params(ev, Prior())
    assert a / (a + b) < 0.5


def fitted(*latencies: float) -> Evidence:
    ev = Evidence()
    for ms in latencies:
        ev = ev.observe(Seen.GOOD, ms, 0.0, HOUR)
    return ev


def test_a_loser_cancelled_early_leaves_the_latency_estimate_almost_unchanged() -> None:
    ev = fitted(1000.0, 2000.0, 4000.0, 2000.0)
    before = ev.mean_latency_ms()
    assert before is not None
    after = ev.observe(Seen.CENSORED, 100.0, 0.0, HOUR).mean_latency_ms()
    assert after == pytest.approx(before, rel=0.05)


def test_calls_cancelled_past_their_p95_make_the_agent_look_slower() -> None:
    ev = fitted(1000.0, 2000.0, 4000.0, 2000.0)
    p95 = ev.p95_latency_ms()
    assert p95 is not None
    slow = ev
    for _ in range(4):
        slow = slow.observe(Seen.CENSORED, 2 * p95, 0.0, HOUR)
    assert (slow.mean_latency_ms() or 0.0) > 2 * (ev.mean_latency_ms() or 0.0)
    assert (slow.successes, slow.failures, slow.censored) == (4.0, 0.0, 4.0)


def test_a_censored_call_before_any_fit_is_counted_but_teaches_no_latency() -> None:
    ev = Evidence().observe(Seen.CENSORED, 700.0, 0.0, HOUR)
    assert ev.censored == 1.0 and ev.mean_latency_ms() is None


def test_p95_needs_a_few_samples_then_follows_the_spread() -> None:
    ev = Evidence()
    assert ev.p95_latency_ms() is None
    for ms in (100.0, 100.0, 100.0, 100.0):
        ev = ev.observe(Seen.GOOD, ms, 0.0, HOUR)
    assert ev.p95_latency_ms() == pytest.approx(100.0)
    spread = Evidence()
    for ms in (50.0, 100.0, 200.0, 400.0):
        spread = spread.observe(Seen.GOOD, ms, 0.0, HOUR)
    p95 = spread.p95_latency_ms()
    assert p95 is not None and 400.0 < p95 < 800.0


def test_beta_cdf_matches_closed_forms() -> None:
    # Beta(1, 1) is uniform; Beta(2, 1) has cdf x^2; Beta(1, 3) has cdf 1-(1-x)^3.
    for x in (0.1, 0.37, 0.5, 0.9):
        assert beta_cdf(x, 1, 1) == pytest.approx(x, abs=1e-9)
        assert beta_cdf(x, 2, 1) == pytest.approx(x * x, abs=1e-9)
        assert beta_cdf(x, 1, 3) == pytest.approx(1 - (1 - x) ** 3, abs=1e-9)
    assert beta_quantile(0.25, 2, 1) == pytest.approx(0.5, abs=1e-9)


def test_the_interval_narrows_with_evidence_and_contains_the_mean() -> None:
    few = beta_interval(3 + 1, 1 + 1)
    many = beta_interval(300 + 1, 100 + 1)
    assert few[0] < 0.75 < few[1] and many[0] < 0.75 < many[1]
    assert many[1] - many[0] < (few[1] - few[0]) / 5
    # Decayed, non-integer counts work too.
    lo, hi = beta_interval(2.5, 1.25)
    assert 0.0 < lo < 2.5 / 3.75 < hi < 1.0


def test_wilson_interval_is_wide_without_data_and_known_for_a_classic_case() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(8, 10, z=1.959964)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)


def test_prior_around_a_mean_keeps_its_weight() -> None:
    p = Prior.around(0.8, weight=2.0)
    assert math.isclose(p.alpha + p.beta, 2.0) and math.isclose(p.alpha / 2.0, 0.8)
