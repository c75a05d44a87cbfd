"""What planning reads and writes on many leased jobs at once (part of JobRepository, kept
apart by role): one lease check for a batch, and the plans' notes in one statement
(PostgreSQL: an UPDATE from arrays; SQLite, in process: an executemany)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, String, Text, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from agent_dispatch.db.models import Job
from agent_dispatch.db.types import UTCDateTime
from agent_dispatch.domain.lease import Lease

_NOTE = (
    update(Job.__table__)  # type: ignore[arg-type]
    .where(Job.id == bindparam("b_id"), Job.lease_token == bindparam("b_token"))
    .values(
        match_summary=bindparam("b_summary"),
        updated_at=bindparam("b_now", type_=UTCDateTime()),
    )
)

_NOTES = (
    func.unnest(
        bindparam("ids", type_=ARRAY(String())),
        bindparam("tokens", type_=ARRAY(String())),
        bindparam("summaries", type_=ARRAY(Text())),
    )
    .table_valued("id", "token", "summary")
    .render_derived(name="note")
)
_NOTE_ALL = (
    update(Job.__table__)  # type: ignore[arg-type]
    .where(Job.id == _NOTES.c.id, Job.lease_token == _NOTES.c.token)
    .values(match_summary=_NOTES.c.summary, updated_at=bindparam("now", type_=UTCDateTime()))
)


JobRow = Row[*tuple[Any, ...]]  # a leased job's columns below, by name

# What planning reads of a leased job: its spec (job_repository.spec_of), status and attempts.
# Core rows, not ORM objects: a plan reads them once and writes through statements.
_PLANNED = select(
    Job.id,
    Job.lease_token,
    Job.status,
    Job.attempts,
    Job.queue_task_id,
    Job.title,
    Job.category,
    Job.tags,
    Job.skill_level,
    Job.description,
    Job.payload,
    Job.max_agents,
    Job.timeout_ms,
    Job.expires_at,
    Job.workflow,
    Job.parent_job_id,
    Job.step_id,
    Job.result_strategy,
)


class JobPlans:
    session: Session

    def leased_many(self, leases: Sequence[Lease]) -> dict[str, JobRow]:
        """The jobs whose lease still holds, by id, in one query (a lost one is absent)."""
        if not leases:
            return {}
        token_of = {le.job_id: le.token for le in leases}
        rows = self.session.connection().execute(_PLANNED.where(Job.id.in_(sorted(token_of))))
        return {r.id: r for r in rows if r.lease_token == token_of[r.id]}

    def note_plans(self, notes: Sequence[tuple[Lease, str]], now: dt.datetime) -> None:
        """`note_plan` for many jobs at once (only while each lease holds)."""
        if not notes:
            return
        # Through the connection: plain statements, not the ORM's bulk-update path.
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.connection().execute(
                _NOTE_ALL,
                {
                    "ids": [le.job_id for le, _ in notes],
                    "tokens": [le.token for le, _ in notes],
                    "summaries": [summary for _, summary in notes],
                    "now": now,
                },
            )
        else:
            self.session.connection().execute(
                _NOTE,
                [
                    {"b_id": le.job_id, "b_token": le.token, "b_summary": s, "b_now": now}
                    for le, s in notes
                ],
            )
