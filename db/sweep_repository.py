"""What the sweep finds and repairs: expired leases, stale OPEN jobs, unreported endings."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from agent_dispatch.db.change_log import record_agent
from agent_dispatch.db.job_repository import JobRepository
from agent_dispatch.db.models import (
    Agent,
    Job,
    JobDistributionAgent,
    JobDistributionRecord,
    on_queue,
)
from agent_dispatch.domain.lease import Lease
from agent_dispatch.domain.statuses import (
    AGENT_OPEN,
    JOB_ACTIVE,
    JOB_TERMINAL,
    AgentRunStatus,
    DistributionStatus,
    FailureKind,
    JobStatus,
)


@dataclasses.dataclass(frozen=True, slots=True)
class AbandonedCall:
    """An agent call a lost worker left running: the agent is told to stop (best effort)."""

    agent_id: str
    agent_name: str
    url: str
    token_ref: str | None
    queue_task_id: str
    distribution_id: str
    remote_task_id: str | None
    protocol: str = "http-json"


@dataclasses.dataclass(frozen=True, slots=True)
class Unreported:
    """A finished job whose ending the queue has not accepted yet (the outbox)."""

    job_id: str
    queue_task_id: str
    status: str
    expected: str
    result: Any
    agent_id: str | None
    error: str | None


class SweepRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_expired_active(self, now: dt.datetime, limit: int) -> Sequence[Job]:
        """Taken jobs whose lease ran out; rows another sweep holds are skipped."""
        stmt = (
            select(Job)
            .where(
                Job.status.in_(JOB_ACTIVE),
                Job.lease_token.is_not(None),
                Job.lease_expires_at < now,
            )
            .order_by(Job.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self.session.scalars(stmt).all()

    def lease_stale_open(
        self, owner: str, seconds: int, now: dt.datetime, limit: int
    ) -> list[Lease]:
        """Lease OPEN jobs left with an expired lease (a crash between storing and taking)."""
        ids = self.session.scalars(
            select(Job.id)
            .where(
                Job.status == JobStatus.OPEN.value,
                Job.lease_token.is_not(None),
                Job.lease_expires_at < now,
                on_queue(),  # a step's run re-takes its OPEN steps; the queue never knew them
            )
            .order_by(Job.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        return JobRepository(self.session).grant_leases(ids, owner, seconds, now)

    def close_open_rows(
        self,
        job_id: str,
        now: dt.datetime,
        default_timeout_ms: int,
        reason: str,
        attempt_status: DistributionStatus = DistributionStatus.ABANDONED,
    ) -> list[AbandonedCall]:
        """End the job's ASSIGNED/WORKING agent rows and its RUNNING attempts.

        The one way open agent work is closed from outside a race (the sweep after a lost
        worker, an operator's cancel). A WORKING call past its time limit ends TIMEOUT; every
        other one ends CANCELLED, which statistics do not count against the agent. Returns the
        calls still running at an agent, so the caller can tell each agent to stop.
        """
        job = self.session.get(Job, job_id)
        limit = dt.timedelta(milliseconds=(job.timeout_ms if job else None) or default_timeout_ms)
        rows = self.session.scalars(
            select(JobDistributionAgent)
            .join(JobDistributionRecord)
            .where(
                JobDistributionRecord.job_id == job_id,
                JobDistributionAgent.status.in_(AGENT_OPEN),
            )
            # In agent id order: closing a row moves its agent's in_flight count (a trigger),
            # and every transaction takes agent rows in that order, so none can deadlock.
            .order_by(JobDistributionAgent.agent_id)
            .with_for_update(of=JobDistributionAgent)
        ).all()
        calls = []
        for row in rows:
            working = row.status == AgentRunStatus.WORKING.value
            timed_out = working and row.started_at is not None and row.started_at + limit <= now
            target = AgentRunStatus.TIMEOUT if timed_out else AgentRunStatus.CANCELLED
            kind = FailureKind.TIMEOUT if timed_out else FailureKind.CANCELLED
            self.session.execute(
                update(JobDistributionAgent)
                .where(
                    and_(
                        JobDistributionAgent.id == row.id, JobDistributionAgent.status == row.status
                    )
                )
                .values(status=target.value, failure_kind=kind.value, finished_at=now, error=reason)
            )
            if job is not None:
                record_agent(
                    self.session,
                    job.id,
                    job.queue_task_id,
                    row.agent_id,
                    row.agent_name,
                    target.value,
                    error=reason,
                    failureKind=kind.value,
                )
            agent = self.session.get(Agent, row.agent_id) if row.agent_id else None
            if working and agent is not None:
                calls.append(
                    AbandonedCall(
                        agent.id,
                        agent.name,
                        agent.url,
                        agent.token_ref,
                        job.queue_task_id if job else "",
                        row.distribution_id,
                        row.remote_task_id,
                        agent.protocol,
                    )
                )
        self.session.execute(
            update(JobDistributionRecord)
            .where(
                JobDistributionRecord.job_id == job_id,
                JobDistributionRecord.status == DistributionStatus.RUNNING.value,
            )
            .values(status=attempt_status.value, finished_at=now, error=reason)
        )
        return calls

    def hand_back(self, job_id: str, token: str) -> bool:
        """Clear an expired lease so claim_rescued can take the job again."""
        res = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_token == token)
            .values(lease_token=None, lease_owner=None, lease_expires_at=None)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]

    def unreported(
        self, settled_before: dt.datetime, limit: int, job_ids: Sequence[str] = ()
    ) -> list[str]:
        """Ids of finished jobs the queue still has in a non-final status, oldest first.

        `settled_before` leaves a just-finished job to the worker that is reporting it now
        (sending twice is harmless, the PATCH is conditional, but noisy); `job_ids` are
        taken whatever their age (the sweep just ended them itself).
        """
        recent = Job.updated_at < settled_before
        if job_ids:
            recent = recent | Job.id.in_(list(job_ids))
        return list(
            self.session.scalars(
                select(Job.id)
                # Step jobs end locally; their workflow's parent reports the workflow.
                .where(Job.status.in_(JOB_TERMINAL), _untold(), recent, on_queue())
                .order_by(Job.updated_at)
                .limit(limit)
            ).all()
        )

    def claim_unreported(self, job_id: str) -> Unreported | None:
        """Lock one untold ending for as long as this transaction lasts; None when it was told
        meanwhile or another sweep holds it now (SKIP LOCKED), so two sweeps never both send it.
        """
        j = self.session.scalars(
            select(Job)
            .where(Job.id == job_id, Job.status.in_(JOB_TERMINAL), _untold())
            .with_for_update(skip_locked=True)
        ).one_or_none()
        if j is None:
            return None
        return Unreported(
            j.id,
            j.queue_task_id,
            j.status,
            j.queue_status or JobStatus.OPEN.value,
            j.result,
            j.selected_agent_id,
            j.error,
        )

    def mark_reported(self, job_id: str, queue_status: str) -> None:
        """Record what the queue now holds; only for a finished job (never moves its status)."""
        self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(JOB_TERMINAL))
            .values(queue_status=queue_status)
        )


def _untold() -> Any:
    """The queue has not accepted an ending for this job yet."""
    return Job.queue_status.is_(None) | Job.queue_status.not_in(JOB_TERMINAL)
