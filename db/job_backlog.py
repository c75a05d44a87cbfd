"""Jobs waiting on a verdict: the agent pool version and the batched reads and writes that
let intake leave an unservable backlog alone (see domain/backlog.py, migration 0009)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from agent_dispatch.db.models import AgentPool, Job
from agent_dispatch.domain.statuses import JobStatus


class BacklogQueries:
    """Part of JobRepository (kept apart by role)."""

    session: Session

    def pool_version(self) -> int:
        """The agent pool's version (migration 0009). Read it before reading the agents a
        verdict is made from: a change committed after this read moves the version, so a
        verdict recorded with it can only be too old, never trusted past a change."""
        return self.session.scalars(select(AgentPool.version).where(AgentPool.id == 1)).one()

    def stored(
        self, queue_task_ids: Sequence[str], version: int, now: dt.datetime, max_attempts: int
    ) -> dict[str, bool]:
        """Which of these queue tasks are stored already (one query), each with whether it
        waits on a current unservable verdict: OPEN, found unservable at `version`, and not
        about to end (expired or out of attempts ends it, so it must be planned)."""
        waits = and_(
            Job.status == JobStatus.OPEN.value,
            Job.unserved_version == version,
            or_(Job.expires_at.is_(None), Job.expires_at > now),
            Job.attempts < max_attempts,
        )
        rows = self.session.execute(
            select(Job.queue_task_id, waits).where(Job.queue_task_id.in_(list(queue_task_ids)))
        ).tuples()
        return {qid: bool(waiting) for qid, waiting in rows}

    def open_jobs(self, queue_task_ids: Sequence[str], now: dt.datetime) -> dict[str, Job]:
        """These tasks' jobs that are OPEN and free to lease, by queue task id."""
        rows = self.session.scalars(
            select(Job).where(
                Job.queue_task_id.in_(list(queue_task_ids)),
                Job.status == JobStatus.OPEN.value,
                or_(Job.lease_token.is_(None), Job.lease_expires_at < now),
            )
        )
        return {job.queue_task_id: job for job in rows}

    def note_unserved(self, reasons: dict[str, str], version: int, now: dt.datetime) -> None:
        """Record, in one batched statement, that no agent can serve these jobs (by queue
        task id) at pool `version`, and why; skipped for a job someone leased meanwhile."""
        if not reasons:
            return
        jobs = Job.__table__
        assert isinstance(jobs, Table)  # Core: an executemany with per-row parameters
        stmt = (
            update(jobs)
            .where(
                jobs.c.queue_task_id == bindparam("qid"),
                jobs.c.status == JobStatus.OPEN.value,
                or_(jobs.c.lease_token.is_(None), jobs.c.lease_expires_at < now),
            )
            .values(match_summary=bindparam("why"), unserved_version=version, updated_at=now)
        )
        self.session.execute(stmt, [{"qid": q, "why": w} for q, w in reasons.items()])
