"""Intake of queue tasks as OPEN jobs: idempotent, a page in one statement, and an item the
database cannot hold refused alone (part of JobRepository, kept apart by role)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from agent_dispatch.db.change_log import record_job
from agent_dispatch.db.engine import insert_on_conflict
from agent_dispatch.db.models import Job, new_id
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.domain.storable import spec_problem, storable_text

# Raised while binding a value (before the server sees it): serialising JSON, encoding text.
_BIND_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)

Item = tuple[JobSpec, dt.datetime | None]


def _first_line(exc: BaseException | None) -> str:
    text = str(exc) if exc is not None else ""
    return (text.splitlines() or ["unknown error"])[0][:200]


def _refusal(exc: Exception) -> str:
    """Why the database would not hold an item; re-raises what is not about the item:
    errors that say the database itself is in trouble (connection lost, server shutting
    down) propagate, so an outage never turns into tasks reported FAILED."""
    if isinstance(exc, DataError | IntegrityError):
        return f"the database refused it: {_first_line(exc.orig)}"
    if isinstance(exc, DBAPIError):
        raise exc
    if isinstance(exc, StatementError):
        if not isinstance(exc.orig, _BIND_ERRORS):
            raise exc
        return f"cannot be stored: {_first_line(exc.orig)}"
    if isinstance(exc, _BIND_ERRORS):
        return f"cannot be stored: {_first_line(exc)}"
    raise exc


def _values(spec: JobSpec, queue_created_at: dt.datetime | None) -> dict[str, Any]:
    return {
        "id": new_id(),
        "queue_task_id": spec.queue_task_id,
        "title": spec.title,
        "description": spec.description,
        "category": spec.category,
        "tags": list(spec.tags),
        "skill_level": spec.skill_level,
        "payload": spec.payload,
        "max_agents": spec.max_agents,
        "timeout_ms": spec.timeout_ms,
        "expires_at": spec.expires_at,
        "workflow": spec.workflow,
        "result_strategy": spec.result_strategy.as_dict() if spec.result_strategy else None,
        "status": JobStatus.OPEN.value,
        "attempts": 0,
        "queue_status": JobStatus.OPEN.value,
        "queue_created_at": queue_created_at,
    }


class JobIntake:
    session: Session

    def _insert(self, items: Sequence[Item]) -> None:
        """INSERT .. ON CONFLICT DO NOTHING of all items as one executemany (SQLAlchemy sends
        it as multi-row batches from one cached statement); a change-log row per new job."""
        jobs = Job.__table__
        assert isinstance(jobs, Table)
        stmt = (
            insert_on_conflict(self.session.get_bind().dialect.name, jobs)
            .on_conflict_do_nothing(index_elements=["queue_task_id"])
            .returning(jobs.c.id, jobs.c.queue_task_id)
        )
        rows = [_values(spec, at) for spec, at in items]
        for job_id, queue_task_id in self.session.execute(stmt, rows).tuples():
            record_job(self.session, job_id, queue_task_id, JobStatus.OPEN.value, {})

    def intake(self, spec: JobSpec, queue_created_at: dt.datetime | None = None) -> str:
        """Store a queue task as an OPEN job once; a second delivery returns the same job id."""
        self._insert([(spec, queue_created_at)])
        return self.session.scalars(
            select(Job.id).where(Job.queue_task_id == spec.queue_task_id)
        ).one()

    def intake_each(self, items: Iterable[Item]) -> list[tuple[str, str]]:
        """Intake every item; returns (queue task id, reason) of each item refused, so one the
        database cannot hold never sinks its neighbours.

        All items go in one statement in one savepoint; only when the database refuses that
        does each item get a savepoint of its own, to find the ones it refuses.
        """
        refused, fit = [], []
        for spec, created_at in items:
            problem = spec_problem(spec)
            if problem is None:
                fit.append((spec, created_at))
            else:
                refused.append((spec.queue_task_id, storable_text(problem)))
        if not fit:
            return refused
        try:
            with self.session.begin_nested():
                self._insert(fit)
            return refused
        except Exception as exc:  # _refusal re-raises what is not about the items
            _refusal(exc)
        for spec, created_at in fit:
            try:
                with self.session.begin_nested():
                    self._insert([(spec, created_at)])
            except Exception as exc:  # as above
                refused.append((spec.queue_task_id, storable_text(_refusal(exc))))
        return refused
