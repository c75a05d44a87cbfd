"""The change log: every job and agent status change, in the transaction that made it.

Repositories call `record_job` / `record_agent` next to each status write; the rows are
inserted just before that transaction commits (a `before_commit` hook), on PostgreSQL under
a transaction-level advisory lock together with `pg_notify`. Taking the lock last, for the
insert and the commit only, means change-log ids become visible in increasing order: a
reader that has seen id N has seen every committed id below N, so `after=<id>` replays and
the live listener can never skip a row that commits late. Nothing else is held while
waiting for that lock, so it cannot take part in a deadlock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, event, func, insert, or_, select, text
from sqlalchemy.orm import Session, SessionTransaction, aliased

from agent_dispatch.db.models import (
    ChangeLogEntry,
    Job,
    JobDistributionAgent,
    JobDistributionRecord,
)
from agent_dispatch.db.types import utcnow

CHANNEL = "agent_dispatch_changes"
KEEP_INFO = "change_log_keep"  # a session.info key; the session factory sets it from settings
DEFAULT_KEEP = 100_000
PRUNE_EVERY = 500  # prune when ids cross a multiple of this: cheap, and bounded
_PENDING = "change_log_pending"
_MARKS = "change_log_savepoints"  # savepoint -> how many changes were pending when it began
_LOCK_KEY = 0x41_44_43_4C  # "ADCL": the one advisory lock that orders change-log commits
_DETAIL_TEXT = 500  # longest error text kept in a change (the job row has all of it)


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    id: int
    at: dt.datetime
    kind: str
    job_id: str
    queue_task_id: str
    agent_id: str | None
    agent: str | None
    status: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "jobId": self.job_id,
            "queueTaskId": self.queue_task_id,
            "agent": self.agent,
            "agentId": self.agent_id,
            "status": self.status,
            "at": self.at.isoformat(),
            "detail": self.detail,
        }


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _DETAIL_TEXT:
        return value[: _DETAIL_TEXT - 1] + "…"
    return value


def _add(session: Session, row: dict[str, Any]) -> None:
    row["detail"] = {k: _short(v) for k, v in row["detail"].items() if v is not None}
    session.info.setdefault(_PENDING, []).append(row)


def record_job(
    session: Session,
    job_id: str,
    queue_task_id: str,
    status: str,
    fields: dict[str, Any],
    *,
    parent_job_id: str | None = None,
) -> None:
    """A job moved to `status`; `fields` are the other columns that move wrote. A workflow
    step's change names its step and parent, so a live view can update the parent's tree."""
    detail: dict[str, Any] = {"error": fields.get("error")}
    if parent_job_id is not None:
        detail.update(_step_of(session, job_id, parent_job_id))
    winner_id = fields.get("selected_agent_id")
    if winner_id:
        won = session.execute(
            select(JobDistributionAgent.agent_name, JobDistributionAgent.latency_ms)
            .join(JobDistributionRecord)
            .where(
                JobDistributionRecord.job_id == job_id, JobDistributionAgent.agent_id == winner_id
            )
            .order_by(JobDistributionRecord.attempt.desc())
            .limit(1)
        ).first()
        if won is not None:
            detail.update(winner=won[0], winnerLatencyMs=won[1])
    _add(session, _row("job", job_id, queue_task_id, None, None, status, detail))


def _step_of(session: Session, job_id: str, parent_job_id: str) -> dict[str, Any]:
    parent = aliased(Job)
    found = session.execute(
        select(Job.step_id, parent.queue_task_id)
        .join(parent, parent.id == Job.parent_job_id)
        .where(Job.id == job_id)
    ).first()
    step_id, parent_qid = found if found is not None else (None, None)
    return {"parentJobId": parent_job_id, "parentQueueTaskId": parent_qid, "stepId": step_id}


def record_agent(
    session: Session,
    job_id: str,
    queue_task_id: str,
    agent_id: str | None,
    agent_name: str,
    status: str,
    **detail: Any,
) -> None:
    """One agent's part in a job moved to `status` (ASSIGNED when it was chosen)."""
    _add(session, _row("agent", job_id, queue_task_id, agent_id, agent_name, status, detail))


def _row(
    kind: str,
    job_id: str,
    queue_task_id: str,
    agent_id: str | None,
    agent_name: str | None,
    status: str,
    detail: dict[str, Any],
) -> dict[str, Any]:
    return {
        "kind": kind,
        "job_id": job_id,
        "queue_task_id": queue_task_id,
        "agent_id": agent_id,
        "agent_name": agent_name,
        "status": status,
        "detail": detail,
    }


# PostgreSQL: the lock, the rows (in the order they were recorded) and the notification in
# one statement, so a transaction holds the lock for that statement and its COMMIT only: one
# client round trip instead of three, which every other status-writing commit waits out.
_PG_WRITE = text("""
    WITH ordered AS (SELECT pg_advisory_xact_lock(:key) AS locked),
    written AS (
        INSERT INTO change_log (at, kind, job_id, queue_task_id, agent_id, agent_name, status,
                                detail)
        SELECT CAST(:at AS timestamptz), r.doc->>'kind', r.doc->>'job_id',
               r.doc->>'queue_task_id', r.doc->>'agent_id', r.doc->>'agent_name',
               r.doc->>'status', r.doc->'detail'
        FROM ordered, jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS r(doc, n)
        ORDER BY r.n
        RETURNING id
    )
    SELECT min(id), max(id), pg_notify(:channel, max(id)::text) FROM written
""")


def _write_postgresql(session: Session, pending: list[dict[str, Any]]) -> tuple[int, int]:
    rows = json.dumps(pending, separators=(",", ":"))
    params = {"key": _LOCK_KEY, "at": utcnow(), "rows": rows, "channel": CHANNEL}
    first, last, _ = session.execute(_PG_WRITE, params).one()
    return int(first), int(last)


def _write_rows(session: Session, pending: list[dict[str, Any]]) -> tuple[int, int]:
    committing = utcnow()  # a change's `at` is its commit (the status columns keep their own)
    for row in pending:
        row["at"] = committing
    ids = session.scalars(
        insert(ChangeLogEntry).returning(ChangeLogEntry.id, sort_by_parameter_order=True),
        pending,
    ).all()
    return min(ids), max(ids)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    session.info.pop(_MARKS, None)
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    if session.get_bind().dialect.name == "postgresql":
        first, last = _write_postgresql(session, pending)
    else:  # SQLite: one writer at a time already
        first, last = _write_rows(session, pending)
    if (first - 1) // PRUNE_EVERY != last // PRUNE_EVERY:
        keep = int(session.info.get(KEEP_INFO, DEFAULT_KEEP))
        session.execute(delete(ChangeLogEntry).where(ChangeLogEntry.id <= last - keep))


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    # A savepoint that rolls back takes the changes recorded inside it along.
    if transaction.nested:
        marks = session.info.setdefault(_MARKS, {})
        marks[transaction] = len(session.info.get(_PENDING, ()))


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    mark = session.info.get(_MARKS, {}).pop(previous_transaction, None)
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)
        session.info.pop(_MARKS, None)
    elif mark is not None:
        del session.info.get(_PENDING, [])[mark:]


# -- reads -------------------------------------------------------------------------------------


def _change(row: ChangeLogEntry) -> Change:
    return Change(
        row.id,
        row.at,
        row.kind,
        row.job_id,
        row.queue_task_id,
        row.agent_id,
        row.agent_name,
        row.status,
        dict(row.detail or {}),
    )


def read_after(
    session: Session,
    after_id: int,
    limit: int = 1000,
    *,
    until: int | None = None,
    job: str | None = None,
    agent: str | None = None,
    kind: str | None = None,
) -> Sequence[Change]:
    """Changes with an id above `after_id` (up to `until`), oldest first; `job` is a job id
    or a queue task id, `agent` an agent name, `kind` "job" or "agent"."""
    stmt = select(ChangeLogEntry).where(ChangeLogEntry.id > after_id)
    if until is not None:
        stmt = stmt.where(ChangeLogEntry.id <= until)
    if job is not None:
        stmt = stmt.where(or_(ChangeLogEntry.job_id == job, ChangeLogEntry.queue_task_id == job))
    if agent is not None:
        stmt = stmt.where(ChangeLogEntry.agent_name == agent)
    if kind is not None:
        stmt = stmt.where(ChangeLogEntry.kind == kind)
    rows = session.scalars(stmt.order_by(ChangeLogEntry.id).limit(limit)).all()
    return [_change(r) for r in rows]


def id_range(session: Session) -> tuple[int, int]:
    """(oldest kept id, newest id); (0, 0) when the log is empty."""
    low, high = session.execute(
        select(func.min(ChangeLogEntry.id), func.max(ChangeLogEntry.id))
    ).one()
    return int(low or 0), int(high or 0)
