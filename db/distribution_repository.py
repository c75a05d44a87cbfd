"""Distribution records and per-agent rows: one record per dispatch attempt of a job."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Text, bindparam, exists, func, insert, select, update
from sqlalchemy.orm import Session

from agent_dispatch.db.agent_repository import AgentRepository, LockedAgent
from agent_dispatch.db.change_log import record_agent
from agent_dispatch.db.engine import loaded_as_written
from agent_dispatch.db.job_repository import LEASE_HELD, held_by
from agent_dispatch.db.models import (
    Job,
    JobDistributionAgent,
    JobDistributionRecord,
    new_id,
)
from agent_dispatch.db.types import UTCDateTime
from agent_dispatch.domain.breaker import Circuit, CircuitState
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.lifecycle import idempotency_key
from agent_dispatch.domain.matching import Decision
from agent_dispatch.domain.statuses import (
    AgentRunStatus,
    DistributionStatus,
    IllegalTransition,
    check_agent_move,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Assignment:
    """One agent call to make: what the agent task needs, with no ORM objects attached."""

    row_id: str
    agent_id: str
    agent_name: str
    url: str
    token_ref: str | None
    rank: int
    idempotency_key: str
    protocol: str = "http-json"


@dataclasses.dataclass(frozen=True, slots=True)
class NewDistribution:
    distribution_id: str
    attempt: int
    assignments: tuple[Assignment, ...]
    dropped: tuple[str, ...]  # agents that filled up between matching and assignment


def _slots(agent: LockedAgent, now: dt.datetime) -> int:
    """Calls the agent may have at once: one trial call while its circuit is half-open."""
    circuit = Circuit(agent.consecutive_failures, agent.circuit_open_until)
    return 1 if circuit.state(now) is CircuitState.HALF_OPEN else agent.max_concurrency


# One agent row's move, built once from the tables: a call's end writes it on the path from
# the agent's answer to the queue being told, where building both statements and running the
# UPDATE through the ORM's bulk-update path each time cost more than the database's work on
# them (measured on one machine: 4.3 ms of the thread's CPU in the 7.5 ms before COMMIT).
_ROW, _RECORD, _JOB = (m.__table__ for m in (JobDistributionAgent, JobDistributionRecord, Job))
_MOVING = (
    select(_ROW.c.status, _ROW.c.agent_id, _ROW.c.agent_name, _JOB.c.id, _JOB.c.queue_task_id)
    .join(_RECORD, _ROW.c.distribution_id == _RECORD.c.id)
    .join(_JOB, _RECORD.c.job_id == _JOB.c.id)
    .where(_ROW.c.id == bindparam("b_row"))
)


class Moving(NamedTuple):
    """What a move reads of its row first (`_MOVING`)."""

    status: str
    agent_id: str | None
    agent_name: str
    job_id: str
    queue_task_id: str


# The SET clause is the parameters' column names (status and the move's fields).
_MOVE = update(_ROW).where(  # type: ignore[arg-type]
    _ROW.c.id == bindparam("b_row"), _ROW.c.status == bindparam("b_current")
)
_LEASE_HOLDS = exists().where(LEASE_HELD)
_MOVE_FENCED = _MOVE.where(_LEASE_HOLDS)
# An attempt's end (one per job), built once as the moves above.
_END = update(_RECORD).where(  # type: ignore[arg-type]
    _RECORD.c.id == bindparam("b_id"), _RECORD.c.status == bindparam("b_running")
)
_END_FENCED = _END.where(_LEASE_HOLDS)


# A take's statements, built once: the attempt counted on the job (fenced by the lease), with
# its plan's summary noted (planning itself writes nothing), the attempt's record, its agent
# rows (an executemany).
_NEXT_ATTEMPT = (
    update(_JOB)  # type: ignore[arg-type]
    .where(LEASE_HELD)
    .values(
        attempts=_JOB.c.attempts + 1,
        match_summary=func.coalesce(bindparam("b_summary", type_=Text()), _JOB.c.match_summary),
        updated_at=bindparam("b_now", type_=UTCDateTime()),
    )
    .returning(_JOB.c.attempts, _JOB.c.queue_task_id)
)
_ADD_RECORD = insert(_RECORD)  # type: ignore[arg-type]
# An attempt undone before it started gives its count back (`discard`).
_UNCOUNT = (
    update(_JOB)  # type: ignore[arg-type]
    .where(LEASE_HELD, _JOB.c.attempts > 0)
    .values(attempts=_JOB.c.attempts - 1)
    .returning(_JOB.c.attempts)
)
_ADD_ROWS = insert(_ROW)  # type: ignore[arg-type]


class AttemptRow(NamedTuple):
    """An attempt's agent row as a finish reads it (read like a JobDistributionAgent)."""

    id: str
    agent_id: str | None
    agent_name: str
    rank: int
    status: str
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    latency_ms: float | None
    result: Any
    score: float | None
    error: str | None
    failure_kind: str | None
    won: bool


_ATTEMPT_ROWS = (
    select(*(_ROW.c[name] for name in AttemptRow._fields))
    .where(_ROW.c.distribution_id == bindparam("b_dist"))
    .order_by(_ROW.c.rank)
)
# Calls starting together (ASSIGNED -> WORKING); the SET clause: status and the fields given.
_START = (
    update(_ROW)  # type: ignore[arg-type]
    .where(
        _ROW.c.id.in_(bindparam("b_rows", expanding=True)),
        _ROW.c.status == bindparam("b_assigned"),
        _LEASE_HOLDS,
    )
    .returning(_ROW.c.id, _ROW.c.agent_id, _ROW.c.agent_name)
)
# Any other field of a row, while the lease holds (the agent's task id); SET from parameters.
_SET_FENCED = update(_ROW).where(_ROW.c.id == bindparam("b_row"), _LEASE_HOLDS)  # type: ignore[arg-type]
_WON = update(_ROW).where(_ROW.c.id == bindparam("b_row")).values(won=True)  # type: ignore[arg-type]


class DistributionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        lease: Lease,
        decisions: Sequence[Decision],
        now: dt.datetime,
        flow_run_id: str | None = None,
        exclusions: Mapping[str, int] | None = None,
        summary: str | None = None,
    ) -> NewDistribution:
        """Record an attempt and assign the chosen agents, re-checking capacity under row locks;
        the job notes `summary` (its plan's, as `jobs show` prints it; None: kept as it was).

        Agents are locked FOR UPDATE (PostgreSQL) before their in-flight counters are read, so
        concurrent runs and workers cannot push an agent past its max concurrency. Inserting
        an ASSIGNED row raises the counter in this transaction (trigger, migration 0008).
        The locks come last, after the attempt's own row is written: every job of these agents
        waits on them, so they are held for the rows' insert, the change log and the commit.
        """
        begun = self.session.execute(
            _NEXT_ATTEMPT, {**held_by(lease), "b_summary": summary, "b_now": now}
        ).one_or_none()
        if begun is None:
            raise LeaseLost(lease.job_id)
        attempt, queue_task_id = begun
        chosen = [d for d in decisions if d.chosen]
        record_id = new_id()
        self.session.execute(
            _ADD_RECORD,
            {
                "id": record_id,
                "job_id": lease.job_id,
                "attempt": attempt,
                "status": DistributionStatus.RUNNING.value,
                "flow_run_id": flow_run_id,
                "decisions": [d.as_dict() for d in decisions],
                "exclusions": dict(exclusions) if exclusions is not None else None,
                "started_at": now,
            },
        )
        locked = {a.id: a for a in AgentRepository(self.session).lock(d.agent_id for d in chosen)}
        assignments, dropped, rows = [], [], []
        for decision in chosen:
            agent = locked.get(decision.agent_id)
            if agent is None or agent.in_flight >= _slots(agent, now):
                dropped.append(decision.agent_name)
                continue
            key = idempotency_key(record_id, agent.id)
            row_id, rank = new_id(), decision.rank or 0
            rows.append(
                {
                    "id": row_id,
                    "distribution_id": record_id,
                    "agent_id": agent.id,
                    "agent_name": agent.name,
                    "rank": rank,
                    "status": AgentRunStatus.ASSIGNED.value,
                    "idempotency_key": key,
                }
            )
            record_agent(
                self.session,
                lease.job_id,
                queue_task_id,
                agent.id,
                agent.name,
                AgentRunStatus.ASSIGNED.value,
                distributionId=record_id,
                attempt=attempt,
                rank=rank,
                flowRunId=flow_run_id,
            )
            assignments.append(
                Assignment(
                    row_id,
                    agent.id,
                    agent.name,
                    agent.url,
                    agent.token_ref,
                    rank,
                    key,
                    agent.protocol,
                )
            )
        if rows:  # each ASSIGNED row raises its agent's in_flight count (a trigger)
            self.session.execute(_ADD_ROWS, rows)
        written: dict[str, Any] = {"attempts": attempt, "updated_at": now}
        if summary is not None:
            written["match_summary"] = summary
        loaded_as_written(self.session, Job, lease.job_id, written)
        return NewDistribution(record_id, attempt, tuple(assignments), tuple(dropped))

    def move_agent(
        self,
        lease: Lease | None,
        row_id: str,
        target: AgentRunStatus,
        *,
        seen: Moving | None = None,
        **fields: Any,
    ) -> AgentRunStatus:
        """Move one agent row; with a lease, only while that lease still holds (fencing).
        `seen`: the row as the caller read it in this transaction (not read again; the
        UPDATE still moves it only from that status)."""
        # Core statements through the session: it flushes what is pending first, as for any
        # statement, without the ORM's per-statement work; loaded rows are kept in step below.
        current, agent_id, agent_name, job_id, queue_task_id = (
            seen or self.session.execute(_MOVING, {"b_row": row_id}).one()
        )
        check_agent_move(current, target)
        written = {"status": target.value, **fields}
        params = {"b_row": row_id, "b_current": current, **written}
        if lease is not None:
            params.update(held_by(lease))
        res = self.session.execute(_MOVE if lease is None else _MOVE_FENCED, params)
        if res.rowcount != 1:  # type: ignore[attr-defined]
            if lease is not None and not self._holds(lease):
                raise LeaseLost(lease.job_id)
            raise IllegalTransition("agent", current, target)
        loaded_as_written(self.session, JobDistributionAgent, row_id, written)
        record_agent(
            self.session,
            job_id,
            queue_task_id,
            agent_id,
            agent_name,
            target.value,
            error=fields.get("error"),
            failureKind=fields.get("failure_kind"),
            latencyMs=fields.get("latency_ms"),
        )
        return AgentRunStatus(current)

    def start_calls(
        self, lease: Lease, queue_task_id: str, row_ids: Sequence[str], **fields: Any
    ) -> None:
        """ASSIGNED -> WORKING for several agent rows in one statement, while the lease holds
        (fencing): a race starts its calls together, and each call then only announces it."""
        working = AgentRunStatus.WORKING.value
        params = {
            "b_rows": list(row_ids),
            "b_assigned": AgentRunStatus.ASSIGNED.value,
            **held_by(lease),
            "status": working,
            **fields,
        }
        moved = {row.id: row for row in self.session.execute(_START, params)}
        if len(moved) != len(set(row_ids)):
            if not self._holds(lease):
                raise LeaseLost(lease.job_id)
            raise IllegalTransition("agent", "not ASSIGNED", working)
        for row_id in row_ids:  # in the order asked: the feed announces them so
            row = moved[row_id]
            record_agent(
                self.session, lease.job_id, queue_task_id, row.agent_id, row.agent_name, working
            )

    def _holds(self, lease: Lease) -> bool:
        return bool(self.session.scalar(select(_LEASE_HOLDS), held_by(lease)))

    def finish(
        self,
        lease: Lease | None,
        distribution_id: str,
        status: DistributionStatus,
        now: dt.datetime,
        winner_agent_id: str | None = None,
        error: str | None = None,
        first_result_at: dt.datetime | None = None,
    ) -> None:
        values = {
            "status": status.value,
            "finished_at": now,
            "winner_agent_id": winner_agent_id,
            "error": error,
            "first_result_at": first_result_at,
        }
        params = {"b_id": distribution_id, "b_running": DistributionStatus.RUNNING.value, **values}
        if lease is not None:
            params.update(held_by(lease))
        res = self.session.execute(_END if lease is None else _END_FENCED, params)
        if res.rowcount != 1 and lease is not None:  # type: ignore[attr-defined]
            raise LeaseLost(lease.job_id)
        loaded_as_written(self.session, JobDistributionRecord, distribution_id, values)

    def discard(self, lease: Lease, distribution_id: str) -> None:
        """Undo an attempt that never started: its rows go, the agents are free again and the
        job's attempt count goes back (only while the lease holds)."""
        if not self._holds(lease):
            raise LeaseLost(lease.job_id)
        record = self.session.get(JobDistributionRecord, distribution_id)
        if record is None:
            return
        qid = self.session.scalars(select(Job.queue_task_id).where(Job.id == lease.job_id)).one()
        for row in record.agents:
            # Its ASSIGNED went out on the feed: say it is over, or watchers wait forever.
            record_agent(
                self.session,
                lease.job_id,
                qid,
                row.agent_id,
                row.agent_name,
                AgentRunStatus.CANCELLED.value,
                error="assignment undone before the call started",
                discarded=True,
            )
            self.session.delete(row)
        self.session.delete(record)
        left = self.session.execute(_UNCOUNT, held_by(lease)).scalar_one_or_none()
        if left is not None:
            loaded_as_written(self.session, Job, lease.job_id, {"attempts": left})

    def set_remote_task_id(self, lease: Lease, row_id: str, remote_task_id: str) -> bool:
        """Remember the agent's task id (for polling and cancel), fenced by the lease."""
        values = {"remote_task_id": remote_task_id}
        res = self.session.execute(_SET_FENCED, {"b_row": row_id, **held_by(lease), **values})
        if res.rowcount:  # type: ignore[attr-defined]
            loaded_as_written(self.session, JobDistributionAgent, row_id, values)
        return bool(res.rowcount)  # type: ignore[attr-defined]

    def rows(self, distribution_id: str) -> Sequence[JobDistributionAgent]:
        """The attempt's agent rows by rank, as ORM objects (operators' views, tests)."""
        stmt = select(JobDistributionAgent).where(
            JobDistributionAgent.distribution_id == distribution_id
        )
        return self.session.scalars(stmt.order_by(JobDistributionAgent.rank)).all()

    def attempt_rows(self, distribution_id: str) -> list[AttemptRow]:
        """The attempt's agent rows by rank, as this transaction sees them (a finish's read)."""
        return [
            AttemptRow(*r) for r in self.session.execute(_ATTEMPT_ROWS, {"b_dist": distribution_id})
        ]

    def mark_won(self, row_id: str) -> None:
        """The row whose result the job kept (the caller holds the lease: the finish)."""
        self.session.execute(_WON, {"b_row": row_id})
        loaded_as_written(self.session, JobDistributionAgent, row_id, {"won": True})
