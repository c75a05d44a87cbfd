"""Result selection, agent statistics after a job, and the per-agent circuit breaker."""

from __future__ import annotations

import datetime as dt

import pytest

from agent_dispatch.domain.breaker import Circuit, after_outcome
from agent_dispatch.domain.model import AgentOutcome, AgentStats
from agent_dispatch.domain.selection import (
    JobVerdict,
    failure_summary,
    is_winner,
    verdict,
)
from agent_dispatch.domain.stats import LATENCY_ALPHA, REPUTATION_ALPHA, apply_outcome
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind, JobStatus

S = AgentRunStatus
T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def ok(result: object = "done", **kw: object) -> AgentOutcome:
    return AgentOutcome(S.COMPLETED, result=result, **kw)  # type: ignore[arg-type]


def failed(error: str = "boom", kind: FailureKind = FailureKind.AGENT_FAILED) -> AgentOutcome:
    return AgentOutcome(S.FAILED, error=error, failure_kind=kind)


def timed_out(error: str = "no answer in 2000 ms") -> AgentOutcome:
    return AgentOutcome(S.TIMEOUT, error=error, failure_kind=FailureKind.TIMEOUT)


def cancelled() -> AgentOutcome:
    return AgentOutcome(S.CANCELLED, error="lost the race", failure_kind=FailureKind.CANCELLED)


def blocked() -> AgentOutcome:
    return AgentOutcome(S.FAILED, error="circuit open", failure_kind=FailureKind.BLOCKED)


# -- selection ----------------------------------------------------------------------------------


def test_is_winner_only_for_completed() -> None:
    assert is_winner(ok())
    for status in (S.FAILED, S.TIMEOUT, S.CANCELLED, S.WORKING, S.ASSIGNED):
        assert not is_winner(AgentOutcome(status))


def test_verdict_picks_the_completed_agent() -> None:
    outcomes = {"id-a": failed(), "id-b": ok(), "id-c": timed_out()}
    names = {"id-a": "alpha", "id-b": "beta", "id-c": "gamma"}
    assert verdict(outcomes, names) == JobVerdict(JobStatus.COMPLETED, winner="id-b", error=None)


def test_verdict_fails_naming_every_agents_failure() -> None:
    outcomes = {
        "id-c": timed_out("no answer in 2000 ms"),
        "id-a": failed("HTTP 500"),
        "id-b": cancelled(),
        "id-d": AgentOutcome(S.FAILED),
    }
    names = {"id-a": "alpha", "id-b": "beta", "id-c": "gamma", "id-d": "delta"}
    v = verdict(outcomes, names)
    assert v.status is JobStatus.FAILED
    assert v.winner is None
    assert v.error == (
        "every agent failed: alpha: FAILED (HTTP 500); beta: CANCELLED (lost the race); "
        "delta: FAILED; gamma: TIMEOUT (no answer in 2000 ms)"
    )


def test_verdict_uses_the_id_when_a_name_is_unknown() -> None:
    v = verdict({"id-x": failed("nope")}, {})
    assert v == JobVerdict(JobStatus.FAILED, None, "every agent failed: id-x: FAILED (nope)")


def test_verdict_with_no_agents() -> None:
    assert verdict({}, {}) == JobVerdict(JobStatus.FAILED, None, "no agent was called")


def test_failure_summary_is_sorted_by_name() -> None:
    summary = failure_summary({"zed": failed("z"), "amy": timed_out("slow")})
    assert summary == "every agent failed: amy: TIMEOUT (slow); zed: FAILED (z)"
    assert failure_summary({}) == "no agent was called"


# -- statistics ---------------------------------------------------------------------------------

BASE = AgentStats(
    runs=10,
    successes=6,
    failures=3,
    timeouts=1,
    wins=4,
    cancelled=1,
    reputation=0.6,
    avg_latency_ms=200.0,
)


def test_cancelled_loser_is_counted_as_cancelled_not_failure() -> None:
    after = apply_outcome(BASE, cancelled(), won=False)
    assert after == BASE._replace(runs=11, cancelled=2)
    assert after.reputation == BASE.reputation
    assert after.failures == BASE.failures
    assert after.success_rate == BASE.success_rate


def test_cancel_kind_with_another_status_is_still_a_cancel() -> None:
    out = AgentOutcome(S.TIMEOUT, failure_kind=FailureKind.CANCELLED)
    assert apply_outcome(BASE, out, won=False) == BASE._replace(runs=11, cancelled=2)


def test_cancelled_without_failure_kind_is_a_cancel() -> None:
    out = AgentOutcome(S.CANCELLED)
    assert apply_outcome(BASE, out, won=False) == BASE._replace(runs=11, cancelled=2)


def test_blocked_changes_nothing() -> None:
    assert apply_outcome(BASE, blocked(), won=False) == BASE
    fresh = AgentStats()
    assert apply_outcome(fresh, blocked(), won=False) == fresh


def test_success_updates_counts_reputation_and_latency_ewma() -> None:
    after = apply_outcome(BASE, ok(latency_ms=100.0), won=True)
    expected_latency = (1 - LATENCY_ALPHA) * 200.0 + LATENCY_ALPHA * 100.0
    assert expected_latency == pytest.approx(180.0)
    assert after == BASE._replace(
        runs=11,
        successes=7,
        wins=5,
        reputation=round(0.9 * 0.6 + 0.1, 6),
        avg_latency_ms=pytest.approx(180.0),
    )
    assert after.reputation == pytest.approx(0.64)


def test_first_latency_is_taken_as_is() -> None:
    after = apply_outcome(AgentStats(), ok(latency_ms=321.0), won=False)
    assert after.avg_latency_ms == 321.0
    assert after.runs == 1
    assert after.successes == 1
    assert after.wins == 0


def test_success_without_latency_keeps_the_average() -> None:
    after = apply_outcome(BASE, ok(), won=False)
    assert after.avg_latency_ms == 200.0
    assert after.successes == 7
    assert after.wins == 4


def test_wins_are_counted_only_when_won() -> None:
    assert apply_outcome(BASE, ok(latency_ms=1.0), won=True).wins == 5
    assert apply_outcome(BASE, ok(latency_ms=1.0), won=False).wins == 4


def test_failure_lowers_reputation_and_keeps_latency() -> None:
    out = AgentOutcome(S.FAILED, failure_kind=FailureKind.HTTP_ERROR, latency_ms=5.0)
    after = apply_outcome(BASE, out, won=False)
    assert after == BASE._replace(
        runs=11, failures=4, reputation=round((1 - REPUTATION_ALPHA) * 0.6, 6)
    )
    assert after.reputation == pytest.approx(0.54)


def test_timeout_counts_as_failure_and_timeout() -> None:
    after = apply_outcome(BASE, timed_out(), won=False)
    assert after == BASE._replace(runs=11, failures=4, timeouts=2, reputation=pytest.approx(0.54))


def test_repeated_successes_push_reputation_towards_one() -> None:
    stats = AgentStats()
    for _ in range(50):
        stats = apply_outcome(stats, ok(latency_ms=100.0), won=True)
    assert 0.99 < stats.reputation <= 1.0
    assert stats.runs == stats.successes == stats.wins == 50
    assert stats.avg_latency_ms == pytest.approx(100.0)


# -- circuit breaker ----------------------------------------------------------------------------


def step(circuit: Circuit, outcome: AgentOutcome, now: dt.datetime = T0) -> Circuit:
    return after_outcome(circuit, outcome, now, threshold=3, reset_seconds=60)


def test_opens_at_threshold() -> None:
    c = Circuit()
    c = step(c, failed())
    assert c == Circuit(1, None)
    c = step(c, timed_out())
    assert c == Circuit(2, None)
    assert not c.is_open(T0)
    c = step(c, AgentOutcome(S.FAILED, failure_kind=FailureKind.CONNECTION))
    assert c == Circuit(3, T0 + dt.timedelta(seconds=60))
    assert c.is_open(T0)
    assert c.is_open(T0 + dt.timedelta(seconds=59))
    # Past open_until the breaker is half-open: calls may be tried again.
    assert not c.is_open(T0 + dt.timedelta(seconds=60))


def test_success_resets() -> None:
    c = step(step(Circuit(), failed()), failed())
    assert c.consecutive_failures == 2
    assert step(c, ok()) == Circuit(0, None)
    opened = Circuit(5, T0 + dt.timedelta(seconds=30))
    assert step(opened, ok()) == Circuit()


@pytest.mark.parametrize("outcome", [cancelled(), blocked(), AgentOutcome(S.CANCELLED)])
def test_cancelled_and_blocked_do_not_count(outcome: AgentOutcome) -> None:
    for circuit in (Circuit(), Circuit(2, None), Circuit(3, T0 + dt.timedelta(seconds=10))):
        assert step(circuit, outcome) == circuit
    # Two real failures plus any number of cancels/refusals stay below the threshold of 3.
    c = Circuit()
    for o in (failed(), outcome, outcome, failed(), outcome):
        c = step(c, o)
    assert c == Circuit(2, None)


def test_half_open_trial_failure_reopens_for_a_full_period() -> None:
    opened = step(step(step(Circuit(), failed()), failed()), failed())
    assert opened.open_until == T0 + dt.timedelta(seconds=60)
    later = T0 + dt.timedelta(seconds=90)
    assert not opened.is_open(later)
    reopened = step(opened, failed(), now=later)
    assert reopened == Circuit(4, later + dt.timedelta(seconds=60))
    assert reopened.is_open(later + dt.timedelta(seconds=59))


def test_half_open_trial_success_closes() -> None:
    opened = Circuit(3, T0 + dt.timedelta(seconds=60))
    assert step(opened, ok(), now=T0 + dt.timedelta(seconds=61)) == Circuit()


def test_threshold_one_opens_on_first_failure() -> None:
    c = after_outcome(Circuit(), timed_out(), T0, threshold=1, reset_seconds=5)
    assert c == Circuit(1, T0 + dt.timedelta(seconds=5))
