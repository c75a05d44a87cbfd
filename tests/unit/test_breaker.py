"""The per-agent circuit breaker: opens after repeated failures, half-opens later, and
ignores refusals and cancelled losers."""

from __future__ import annotations

import datetime as dt

from agent_dispatch.domain.breaker import Circuit, after_outcome
from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FAIL = AgentOutcome(AgentRunStatus.FAILED, failure_kind=FailureKind.HTTP_ERROR)
TIMEOUT = AgentOutcome(AgentRunStatus.TIMEOUT, failure_kind=FailureKind.TIMEOUT)
OK = AgentOutcome(AgentRunStatus.COMPLETED, result=1)


def step(c: Circuit, outcome: AgentOutcome, now: dt.datetime = T0) -> Circuit:
    return after_outcome(c, outcome, now, threshold=3, reset_seconds=60)


def test_opens_after_threshold_consecutive_failures() -> None:
    c = Circuit()
    c = step(step(c, FAIL), TIMEOUT)
    assert not c.is_open(T0)
    c = step(c, FAIL)
    assert c.is_open(T0) and c.open_until == T0 + dt.timedelta(seconds=60)
    assert c.is_open(T0 + dt.timedelta(seconds=59))


def test_half_open_after_the_reset_period_and_a_failed_trial_reopens() -> None:
    c = step(step(step(Circuit(), FAIL), FAIL), FAIL)
    later = T0 + dt.timedelta(seconds=61)
    assert not c.is_open(later)  # half-open: one job may try
    again = step(c, FAIL, later)
    assert again.is_open(later) and again.open_until == later + dt.timedelta(seconds=60)


def test_a_success_closes_and_resets() -> None:
    c = step(step(step(Circuit(), FAIL), FAIL), FAIL)
    assert step(c, OK) == Circuit()


def test_cancelled_losers_and_refusals_do_not_count() -> None:
    c = step(step(Circuit(), FAIL), FAIL)
    lost = AgentOutcome(AgentRunStatus.CANCELLED, failure_kind=FailureKind.CANCELLED)
    blocked = AgentOutcome(AgentRunStatus.FAILED, failure_kind=FailureKind.BLOCKED)
    assert step(step(c, lost), blocked) == c
    assert not step(step(c, lost), blocked).is_open(T0)
