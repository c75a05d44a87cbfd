"""Lifecycle rules of a job between its steps: deadlines, attempts, and how a job ends.

Pure functions over plain values: the services call them, the database never decides them.
"""

from __future__ import annotations

import datetime as dt
import enum

from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus


def deadline_for(spec: JobSpec, default_timeout_ms: int, now: dt.datetime) -> dt.datetime:
    """When we stop waiting for an agent: its time limit, or the job's expiry if sooner."""
    deadline = now + dt.timedelta(milliseconds=spec.timeout_ms or default_timeout_ms)
    if spec.expires_at is not None and spec.expires_at < deadline:
        return spec.expires_at
    return deadline


def attempts_spent(status: JobStatus, attempts: int, max_attempts: int) -> bool:
    """A job already taken (rescued) may be dispatched again only while attempts are left."""
    return status is not JobStatus.OPEN and attempts >= max_attempts


def final_status(
    status: JobStatus, error: str | None, spec: JobSpec, now: dt.datetime
) -> tuple[JobStatus, str | None]:
    """A job that failed because its time ran out ends EXPIRED, not FAILED."""
    if status is JobStatus.FAILED and spec.is_expired(now):
        return JobStatus.EXPIRED, "expired before any agent answered; " + (error or "")
    return status, error


class PlanKind(enum.StrEnum):
    """What planning decided for a leased job."""

    DISPATCH = "dispatch"  # agents chosen: take it and call them
    EXPIRED = "expired"  # past its expiresAt: end it EXPIRED, call nobody
    UNSERVED = "unserved"  # no eligible agent now: left OPEN on the queue
    SPENT = "spent"  # a rescued job whose attempts are used up: end it FAILED


def precheck(
    spec: JobSpec, status: JobStatus, attempts: int, max_attempts: int, now: dt.datetime
) -> tuple[PlanKind, str] | None:
    """Whether a leased job must end before any matching; None when it may be planned."""
    if spec.is_expired(now):
        assert spec.expires_at is not None
        return PlanKind.EXPIRED, f"expired at {spec.expires_at:%Y-%m-%d %H:%M:%S}Z"
    if attempts_spent(status, attempts, max_attempts):
        return PlanKind.SPENT, f"{attempts} attempts spent"
    return None


def rescue_verdict(
    expires_at: dt.datetime | None, attempts: int, now: dt.datetime, max_attempts: int
) -> JobStatus | None:
    """How a job whose worker lost its lease ends now, or None when it goes back to work."""
    if expires_at is not None and expires_at <= now:
        return JobStatus.EXPIRED
    if attempts >= max_attempts:
        return JobStatus.FAILED
    return None


def idempotency_key(distribution_id: str, agent_id: str) -> str:
    """The contract's Idempotency-Key: the same on every retry of one agent call."""
    return f"{distribution_id}:{agent_id}"
