"""Jobs: leased claims and status moves checked by the state machine (intake: job_intake.py,
the waiting backlog: job_backlog.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from agent_dispatch.db.change_log import record_job
from agent_dispatch.db.engine import loaded_as_written
from agent_dispatch.db.job_backlog import BacklogQueries
from agent_dispatch.db.job_intake import JobIntake
from agent_dispatch.db.job_plans import JobPlans, JobRow
from agent_dispatch.db.models import Job, QueueRejection, on_queue
from agent_dispatch.db.types import UTCDateTime
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.model import JobSpec, ResultStrategy
from agent_dispatch.domain.statuses import (
    JOB_ACTIVE,
    IllegalTransition,
    JobStatus,
    check_job_move,
)
from agent_dispatch.domain.storable import storable_text, text_problem


def spec_of(job: Job | JobRow) -> JobSpec:
    """A job's spec from its ORM object or a row holding the same columns (job_plans)."""
    return JobSpec(
        queue_task_id=job.queue_task_id,
        title=job.title,
        category=job.category,
        tags=tuple(job.tags),
        skill_level=job.skill_level,
        description=job.description,
        payload=job.payload,
        max_agents=job.max_agents,
        timeout_ms=job.timeout_ms,
        expires_at=job.expires_at,
        workflow=job.workflow,
        parent_job_id=job.parent_job_id,
        step_id=job.step_id,
        result_strategy=ResultStrategy.from_dict(job.result_strategy),
    )


# A leased job's move, built once: every job makes three (DISTRIBUTED, IN_PROGRESS, its end),
# and building the statements and running the UPDATE through the ORM's bulk-update path cost
# more than the database's work on them (see DistributionRepository.move_agent).
_JOB = Job.__table__
# The lease fence with bound parameters (`held_by`), for statements built once (the
# distribution rows' moves use it too).
LEASE_HELD = and_(_JOB.c.id == bindparam("b_job"), _JOB.c.lease_token == bindparam("b_token"))
_STATE_OF_HELD = select(_JOB.c.status, _JOB.c.parent_job_id, _JOB.c.queue_task_id).where(LEASE_HELD)
# The SET clause is the parameters' column names (a renewal, a release, a note, ...).
_UPDATE_HELD = update(_JOB).where(LEASE_HELD)  # type: ignore[arg-type]
_MOVE_HELD = update(_JOB).where(LEASE_HELD, _JOB.c.status == bindparam("b_current"))  # type: ignore[arg-type]


# Leasing, built once: the claimable jobs (nobody's lease, or an expired one), the queue's
# order (oldest first), rows another worker is claiming skipped; then each one's new lease.
def _claimable(where: Any) -> Any:
    free = or_(
        _JOB.c.lease_token.is_(None),
        _JOB.c.lease_expires_at < bindparam("b_now", type_=UTCDateTime()),
    )
    return (
        select(_JOB.c.id)
        .where(where, free)
        .order_by(_JOB.c.queue_created_at, _JOB.c.created_at)
        .limit(bindparam("b_limit"))
        .with_for_update(skip_locked=True)
    )


_CLAIM_OPEN = _claimable(
    and_(
        _JOB.c.queue_task_id.in_(bindparam("b_tasks", expanding=True)),
        _JOB.c.status == bindparam("b_open"),
    )
)
# Step jobs are resumed by their workflow run, never dispatched on their own.
_CLAIM_RESCUED = _claimable(
    and_(_JOB.c.status.in_(JOB_ACTIVE), _JOB.c.lease_token.is_(None), on_queue())
)
_GRANT = update(_JOB).where(_JOB.c.id == bindparam("b_job"))  # type: ignore[arg-type]


def held_by(lease: Lease) -> dict[str, str]:
    """The parameters of `LEASE_HELD`: this lease's job, while its token is the job's."""
    return {"b_job": lease.job_id, "b_token": lease.token}


class JobRepository(JobIntake, BacklogQueries, JobPlans):
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- intake and claims -------------------------------------------------------------------

    def _claim(self, stmt: Any, params: dict[str, Any], owner: str, seconds: int) -> list[Lease]:
        ids = self.session.scalars(stmt, params).all()
        return self.grant_leases(ids, owner, seconds, params["b_now"])

    def grant_leases(
        self, job_ids: Sequence[str], owner: str, seconds: int, now: dt.datetime
    ) -> list[Lease]:
        """Give each (already row-locked) job a fresh lease token (one executemany)."""
        leases = [Lease.new(job_id, owner, now, seconds) for job_id in job_ids]
        written = [
            {
                "lease_token": lease.token,
                "lease_owner": owner,
                "lease_expires_at": lease.expires_at,
                "unserved_version": None,  # judged again by whoever plans it
            }
            for lease in leases
        ]
        if leases:
            grants = [
                {"b_job": lease.job_id, **w} for lease, w in zip(leases, written, strict=True)
            ]
            self.session.execute(_GRANT, grants)
        for lease, values in zip(leases, written, strict=True):
            loaded_as_written(self.session, Job, lease.job_id, values)
        return leases

    def claim_open(
        self,
        queue_task_ids: Sequence[str],
        owner: str,
        seconds: int,
        now: dt.datetime,
        limit: int | None = None,
    ) -> list[Lease]:
        """Lease up to `limit` OPEN jobs for these queue tasks that nobody else holds."""
        params = {
            "b_tasks": list(queue_task_ids),
            "b_open": JobStatus.OPEN.value,
            "b_now": now,
            "b_limit": limit or len(queue_task_ids),
        }
        return self._claim(_CLAIM_OPEN, params, owner, seconds)

    def claim_rescued(self, owner: str, seconds: int, now: dt.datetime, limit: int) -> list[Lease]:
        """Lease taken jobs that the sweep handed back (no lease, not finished)."""
        return self._claim(_CLAIM_RESCUED, {"b_now": now, "b_limit": limit}, owner, seconds)

    # -- fenced writes -------------------------------------------------------------------------

    def _update_held(self, lease: Lease, values: dict[str, Any]) -> int:
        """Write `values` to the job while this lease holds it; how many rows (0 or 1)."""
        res = self.session.execute(_UPDATE_HELD, {**held_by(lease), **values})
        if res.rowcount:  # type: ignore[attr-defined]
            loaded_as_written(self.session, Job, lease.job_id, values)
        return int(res.rowcount)  # type: ignore[attr-defined]

    def renew(self, lease: Lease, now: dt.datetime, seconds: int) -> Lease:
        new = lease.renewed(now, seconds)
        if self._update_held(lease, {"lease_expires_at": new.expires_at}) != 1:
            raise LeaseLost(lease.job_id)
        return new

    def holds(self, lease: Lease) -> bool:
        return self.session.execute(_STATE_OF_HELD, held_by(lease)).first() is not None

    def note_plan(self, lease: Lease, summary: str, now: dt.datetime) -> None:
        """Record why agents were chosen or excluded (while the lease holds)."""
        self._update_held(lease, {"match_summary": summary, "updated_at": now})

    def release(self, lease: Lease, **fields: Any) -> None:
        """Give the lease back without changing the job's status (with `fields`, e.g. why)."""
        self._update_held(
            lease, {"lease_token": None, "lease_owner": None, "lease_expires_at": None, **fields}
        )

    def expire_lease(self, lease: Lease, now: dt.datetime) -> None:
        """End the lease now but keep its token: the sweep must look at this job next."""
        self._update_held(lease, {"lease_expires_at": now})

    def mark_queue_status(self, job_id: str, status: JobStatus) -> None:
        """Record that the queue accepted a finished job's ending (only while it has it)."""
        self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == status.value)
            .values(queue_status=status.value)
        )

    def get_leased(self, lease: Lease) -> Job:
        job = self.session.scalars(select(Job).where(LEASE_HELD), held_by(lease)).one_or_none()
        if job is None:
            raise LeaseLost(lease.job_id)
        return job

    def transition(
        self, lease: Lease, target: JobStatus, now: dt.datetime, **fields: Any
    ) -> JobStatus:
        """Move a leased job to `target`; refuses illegal moves and writes by a lost lease."""
        held = held_by(lease)
        found = self.session.execute(_STATE_OF_HELD, held).one_or_none()
        if found is None:
            raise LeaseLost(lease.job_id)
        current, queue_task_id = found.status, found.queue_task_id
        check_job_move(current, target, step=found.parent_job_id is not None)
        values = self._status_values(target, now, fields)
        if target.terminal:
            values.update(lease_token=None, lease_owner=None, lease_expires_at=None)
        res = self.session.execute(_MOVE_HELD, {**held, "b_current": current, **values})
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost(lease.job_id)
        loaded_as_written(self.session, Job, lease.job_id, values)
        record_job(
            self.session,
            lease.job_id,
            queue_task_id,
            target.value,
            fields,
            parent_job_id=found.parent_job_id,
        )
        return JobStatus(current)

    def transition_unleased(
        self, job_id: str, target: JobStatus, now: dt.datetime, **fields: Any
    ) -> JobStatus:
        """Operator or sweep move: revokes any lease, so the worker holding it stops writing."""
        found = self.session.execute(
            select(Job.status, Job.parent_job_id, Job.queue_task_id)
            .where(Job.id == job_id)
            .with_for_update()
        ).one_or_none()
        if found is None:
            raise KeyError(job_id)
        current, queue_task_id = found.status, found.queue_task_id
        check_job_move(current, target, step=found.parent_job_id is not None)
        values = self._status_values(target, now, fields)
        values.update(lease_token=None, lease_owner=None, lease_expires_at=None)
        res = self.session.execute(
            update(Job).where(Job.id == job_id, Job.status == current).values(**values)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise IllegalTransition("job", current, target)
        record_job(
            self.session,
            job_id,
            queue_task_id,
            target.value,
            fields,
            parent_job_id=found.parent_job_id,
        )
        return JobStatus(current)

    @staticmethod
    def _status_values(
        target: JobStatus, now: dt.datetime, fields: dict[str, Any]
    ) -> dict[str, Any]:
        values = {"status": target.value, "updated_at": now, **fields}
        if target is JobStatus.DISTRIBUTED:
            values.setdefault("distributed_at", now)
        if target.terminal:
            values.setdefault("finished_at", now)
        return values

    # -- queue items that could not become jobs ------------------------------------------------

    def record_rejections(self, items: Sequence[tuple[str | None, str]]) -> list[int]:
        """Keep each rejected queue item (its id when usable, and why); returns the row ids."""
        # The reason is ours and made storable; an id the database cannot hold is left out
        # (the client never calls such an id usable; this guards other callers).
        rows = [
            QueueRejection(
                queue_task_id=task_id if task_id and not text_problem(task_id) else None,
                reason=storable_text(reason),
            )
            for task_id, reason in items
        ]
        self.session.add_all(rows)
        self.session.flush()
        return [r.id for r in rows]

    def rejection_reported(self, row_id: int) -> None:
        self.session.execute(
            update(QueueRejection).where(QueueRejection.id == row_id).values(reported=True)
        )

    # -- reads ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self.session.get(Job, job_id)

    def find(self, ref: str) -> Job | None:
        """A job by its id, id prefix, or queue task id."""
        job = self.session.get(Job, ref)
        if job is None:
            job = self.session.scalars(select(Job).where(Job.queue_task_id == ref)).one_or_none()
        if job is None and len(ref) >= 6:
            rows = self.session.scalars(select(Job).where(Job.id.startswith(ref)).limit(2)).all()
            job = rows[0] if len(rows) == 1 else None
        return job

    def list(self, status: JobStatus | None = None, limit: int = 100) -> Sequence[Job]:
        stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(Job.status == status.value)
        return self.session.scalars(stmt).all()
