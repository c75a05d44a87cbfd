"""agents.in_flight, kept by triggers (migration 0008), equals the open rows it stands for
after every way a row opens or closes, on both dialects (repositories only; the services'
win/lose/cancel/sweep paths: tests/services/test_in_flight_counter.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from agent_dispatch.db.models import Agent
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.matching import Decision
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import AgentRunStatus, IllegalTransition
from tests.support.matching_tables import pg_sessions, sqlite_sessions


def counters(factory: sessionmaker[Session]) -> dict[str, tuple[int, int]]:
    """Per agent name: (kept counter, rows counted now)."""
    with UnitOfWork(factory) as uow:
        counted = uow.agents.recount_in_flight()
        return {a.name: (a.in_flight, counted.get(a.id, 0)) for a in uow.agents.list()}


def kept(factory: sessionmaker[Session]) -> dict[str, int]:
    found = counters(factory)
    assert all(k == n for k, n in found.values()), found
    return {name: k for name, (k, _) in found.items()}


def lease_job(factory: sessionmaker[Session], qid: str) -> Lease:
    with UnitOfWork(factory) as uow:
        uow.jobs.intake(JobSpec(queue_task_id=qid, title="t", category="general"))
        (lease,) = uow.jobs.claim_open([qid], "w", 300, utcnow())
        uow.commit()
    return lease


def assign(factory: sessionmaker[Session], lease: Lease, ids: dict[str, str]) -> list[str]:
    chosen = [Decision(i, n, True, True, "t", 1.0, r) for r, (n, i) in enumerate(ids.items(), 1)]
    with UnitOfWork(factory) as uow:
        made = uow.distributions.create(lease, chosen, utcnow())
        uow.commit()
    return [a.row_id for a in made.assignments]


def move(factory: sessionmaker[Session], lease: Lease, row: str, to: AgentRunStatus) -> None:
    with UnitOfWork(factory) as uow:
        uow.distributions.move_agent(lease, row, to)
        uow.commit()


def every_path(factory: sessionmaker[Session]) -> None:
    with UnitOfWork(factory) as uow:
        ids = {
            n: uow.agents.add(Agent(name=n, url="http://x", categories=["general"])).id
            for n in ("a", "b", "c")
        }
        uow.commit()
    assert kept(factory) == {"a": 0, "b": 0, "c": 0}

    # A race: three assigned, two start, one wins, one fails, the idle one is cancelled.
    race = lease_job(factory, "race")
    ra, rb, rc = assign(factory, race, ids)
    assert kept(factory) == {"a": 1, "b": 1, "c": 1}
    move(factory, race, ra, AgentRunStatus.WORKING)
    move(factory, race, rb, AgentRunStatus.WORKING)
    assert kept(factory) == {"a": 1, "b": 1, "c": 1}  # ASSIGNED -> WORKING stays open
    move(factory, race, ra, AgentRunStatus.COMPLETED)
    move(factory, race, rb, AgentRunStatus.FAILED)
    move(factory, race, rc, AgentRunStatus.CANCELLED)
    assert kept(factory) == {"a": 0, "b": 0, "c": 0}

    # An attempt undone before any call started gives its agents back.
    undone = lease_job(factory, "undone")
    assign(factory, undone, {"a": ids["a"], "b": ids["b"]})
    with UnitOfWork(factory) as uow:
        (record,) = uow.jobs.get_leased(undone).distributions
        uow.distributions.discard(undone, record.id)
        uow.commit()
    assert kept(factory) == {"a": 0, "b": 0, "c": 0}

    # The sweep (and an operator's cancel) close whatever is still open.
    swept = lease_job(factory, "swept")
    first, _ = assign(factory, swept, {"b": ids["b"], "c": ids["c"]})
    move(factory, swept, first, AgentRunStatus.WORKING)
    assert kept(factory) == {"a": 0, "b": 1, "c": 1}
    with UnitOfWork(factory) as uow:
        uow.sweep.close_open_rows(swept.job_id, utcnow(), 30_000, "worker lost")
        uow.commit()
    assert kept(factory) == {"a": 0, "b": 0, "c": 0}

    # A removed agent takes its count with it; the others' stay right.
    gone = lease_job(factory, "gone")
    assign(factory, gone, {"a": ids["a"], "c": ids["c"]})
    with UnitOfWork(factory) as uow:
        uow.session.execute(delete(Agent).where(Agent.id == ids["a"]))
        uow.commit()
    assert kept(factory) == {"b": 0, "c": 1}


def test_sqlite_in_flight_counter_follows_every_open_and_close(tmp_path: Path) -> None:
    with sqlite_sessions(tmp_path) as factory:
        every_path(factory)


@pytest.mark.postgres
def test_postgres_in_flight_counter_follows_every_open_and_close(database_url: str) -> None:
    with pg_sessions(database_url) as factory:
        every_path(factory)


def calls_started_together(factory: sessionmaker[Session]) -> None:
    with UnitOfWork(factory) as uow:
        ids = {
            n: uow.agents.add(
                Agent(name=n, url="http://x", categories=["general"], max_concurrency=5)
            ).id
            for n in ("a", "b")
        }
        uow.commit()
    lease = lease_job(factory, "together")
    rows = assign(factory, lease, ids)
    with UnitOfWork(factory) as uow:  # all of them WORKING in one statement, counters kept
        uow.distributions.start_calls(lease, "together", rows, started_at=utcnow())
        uow.commit()
    assert kept(factory) == {"a": 1, "b": 1}
    # A row no longer ASSIGNED: refused, nothing moved.
    with UnitOfWork(factory) as uow, pytest.raises(IllegalTransition):
        uow.distributions.start_calls(lease, "together", rows)
    again = lease_job(factory, "stolen")
    more = assign(factory, again, ids)
    assert len(more) == 2
    stolen = dataclasses.replace(again, token="someone-else's")
    with UnitOfWork(factory) as uow, pytest.raises(LeaseLost):  # a lease not held
        uow.distributions.start_calls(stolen, "stolen", more)
    with UnitOfWork(factory) as uow:
        statuses = {r.status for r in uow.jobs.get_leased(again).distributions[0].agents}
    assert statuses == {AgentRunStatus.ASSIGNED.value}


def test_sqlite_calls_start_together_only_while_the_lease_holds(tmp_path: Path) -> None:
    with sqlite_sessions(tmp_path) as factory:
        calls_started_together(factory)


@pytest.mark.postgres
def test_postgres_calls_start_together_only_while_the_lease_holds(database_url: str) -> None:
    with pg_sessions(database_url) as factory:
        calls_started_together(factory)
