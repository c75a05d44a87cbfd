"""Lifecycle rules between the steps (domain/lifecycle.py): pure, no database."""

from __future__ import annotations

import datetime as dt

from agent_dispatch.domain.lifecycle import (
    PlanKind,
    deadline_for,
    final_status,
    idempotency_key,
    precheck,
    rescue_verdict,
)
from agent_dispatch.domain.model import AgentOutcome, JobSpec
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind, JobStatus

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def spec(**kw: object) -> JobSpec:
    return JobSpec(queue_task_id="t1", title="t", category="general", **kw)  # type: ignore[arg-type]


def test_deadline_is_the_agent_time_limit_or_the_expiry_when_sooner() -> None:
    assert deadline_for(spec(timeout_ms=2000), 30000, NOW) == NOW + dt.timedelta(seconds=2)
    assert deadline_for(spec(), 30000, NOW) == NOW + dt.timedelta(seconds=30)
    soon = NOW + dt.timedelta(seconds=1)
    assert deadline_for(spec(timeout_ms=2000, expires_at=soon), 30000, NOW) == soon


def test_a_failure_after_the_expiry_ends_expired_and_keeps_the_agents_errors() -> None:
    late = spec(expires_at=NOW - dt.timedelta(seconds=1))
    assert final_status(JobStatus.FAILED, "a: TIMEOUT", late, NOW) == (
        JobStatus.EXPIRED,
        "expired before any agent answered; a: TIMEOUT",
    )
    assert final_status(JobStatus.FAILED, "a: TIMEOUT", spec(), NOW) == (
        JobStatus.FAILED,
        "a: TIMEOUT",
    )
    assert final_status(JobStatus.COMPLETED, None, late, NOW) == (JobStatus.COMPLETED, None)


def test_precheck_ends_expired_jobs_and_rescued_jobs_with_no_attempts_left() -> None:
    expired = precheck(spec(expires_at=NOW), JobStatus.OPEN, 0, 3, NOW)
    assert expired is not None and expired[0] is PlanKind.EXPIRED
    assert precheck(spec(), JobStatus.IN_PROGRESS, 3, 3, NOW) == (
        PlanKind.SPENT,
        "3 attempts spent",
    )
    # A new job has used no attempt of its own yet, whatever the counter says.
    assert precheck(spec(), JobStatus.OPEN, 3, 3, NOW) is None
    assert precheck(spec(), JobStatus.DISTRIBUTED, 2, 3, NOW) is None


def test_rescue_verdict_expires_first_then_fails_when_attempts_are_spent() -> None:
    assert rescue_verdict(NOW, 0, NOW, 3) is JobStatus.EXPIRED
    assert rescue_verdict(None, 3, NOW, 3) is JobStatus.FAILED
    assert rescue_verdict(NOW + dt.timedelta(hours=1), 1, NOW, 3) is None


def test_idempotency_key_is_distribution_then_agent() -> None:
    assert idempotency_key("d1", "a1") == "d1:a1"


def test_losers_and_refused_calls_do_not_judge_the_agent() -> None:
    loser = AgentOutcome(AgentRunStatus.CANCELLED, failure_kind=FailureKind.CANCELLED)
    blocked = AgentOutcome(AgentRunStatus.FAILED, failure_kind=FailureKind.BLOCKED)
    timeout = AgentOutcome(AgentRunStatus.TIMEOUT, failure_kind=FailureKind.TIMEOUT)
    assert not loser.judges_agent and not blocked.judges_agent
    assert timeout.judges_agent and AgentOutcome(AgentRunStatus.COMPLETED).judges_agent
