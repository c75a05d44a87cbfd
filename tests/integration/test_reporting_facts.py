"""The analytics facts of migration 0010, kept by triggers, equal what the joins they replace
compute — whatever order the rows are written in, on PostgreSQL and on SQLite.

Each call carries its job's category; each ended job its attempts, first start and first
result, calls started and never started, and the widest first-to-last call start of one
attempt. Expected values are recomputed here from the ORM rows, not read from the columns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.orm import Session

from agent_dispatch.db.engine import make_engine
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent, Job, JobDistributionAgent, JobDistributionRecord
from agent_dispatch.settings import normalize_database_url
from tests.support.reporting_history import seed_history

B = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
FACTS = ("dispatch_attempts", "first_started_at", "first_result_at", "calls_started",
         "calls_unstarted", "call_spread_ms")  # fmt: skip
ENDED = {"COMPLETED", "CANCELLED", "EXPIRED", "FAILED", "SKIPPED"}


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("database_url")
        eng = make_engine(normalize_database_url(url))
    else:
        eng = make_engine(f"sqlite:///{tmp_path / 'facts.db'}")
        upgrade(eng)
    yield eng
    eng.dispose()


def _utc(moment: Any) -> dt.datetime | None:
    if moment is None:
        return None
    if isinstance(moment, str):  # SQLite text
        moment = dt.datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def stored(session: Session, job_id: str) -> tuple[Any, ...]:
    row = session.execute(
        text(f"SELECT {', '.join(FACTS)} FROM jobs WHERE id = :id"), {"id": job_id}
    ).one()
    attempts, first_start, first_result, started, unstarted, spread = row
    return (attempts, _utc(first_start), _utc(first_result), started, unstarted,
            None if spread is None else round(float(spread), 3))  # fmt: skip


def expected(session: Session, job_id: str) -> tuple[Any, ...]:
    """The facts of one job, from its distribution and agent rows."""
    dists = session.scalars(
        select(JobDistributionRecord).where(JobDistributionRecord.job_id == job_id)
    ).all()
    calls = [c for d in dists for c in d.agents]
    spreads = []
    for d in dists:
        starts = [c.started_at for c in d.agents if c.started_at is not None]
        if starts:
            spreads.append((max(starts) - min(starts)).total_seconds() * 1000)
    first_results = [d.first_result_at for d in dists if d.first_result_at is not None]
    started = sum(c.started_at is not None for c in calls)
    return (
        len(dists),
        min((d.started_at for d in dists), default=None),
        min(first_results, default=None),
        started,
        len(calls) - started,
        round(max(spreads), 3) if spreads else None,
    )


def check_all(engine: Engine) -> int:
    """Every ended job's facts and every call's category; returns the jobs checked."""
    with Session(engine) as session:
        jobs = session.scalars(select(Job)).all()
        for job in jobs:
            if job.status in ENDED:
                assert stored(session, job.id) == expected(session, job.id), job.queue_task_id
        pairs = session.execute(
            select(text("job_distribution_agents.category"), Job.category)
            .select_from(JobDistributionAgent)
            .join(JobDistributionRecord)
            .join(Job)
        ).all()
        assert pairs and all(call == job for call, job in pairs)
        return sum(j.status in ENDED for j in jobs)


def test_facts_of_a_history_written_job_first(engine: Engine) -> None:
    """The reporting fixtures insert an ended job, then its attempts, then its calls."""
    with Session(engine) as session:
        seed_history(session, B)
    assert check_all(engine) == 11


def test_facts_follow_a_job_through_dispatch_and_later_changes(engine: Engine) -> None:
    """The dispatch order: open job, attempt, reserved calls, staggered starts, first result,
    end; then changes after the end (a call's start corrected, an attempt deleted)."""
    at = B + dt.timedelta(minutes=5)
    with Session(engine) as session:
        agents = [Agent(name=n, url=f"http://127.0.0.1:9/{n}") for n in ("a", "b", "c")]
        session.add_all(agents)
        job = Job(queue_task_id="q1", title="t", category="code", status="OPEN", created_at=B)
        session.add(job)
        session.flush()
        dists = []
        for n in (1, 2):
            d = JobDistributionRecord(job_id=job.id, attempt=n, status="RUNNING",
                                      started_at=at + dt.timedelta(seconds=10 * n))  # fmt: skip
            session.add(d)
            session.flush()
            dists.append(d)
            for rank, agent in enumerate(agents, start=1):
                session.add(JobDistributionAgent(
                    distribution_id=d.id, agent_id=agent.id, agent_name=agent.name, rank=rank,
                    status="ASSIGNED", idempotency_key=f"{d.id}:{agent.id}"))  # fmt: skip
        session.commit()
        assert stored(session, job.id) == (None,) * 6  # open: not maintained
        # attempt 1: two calls 80 ms apart (a hedge), one never started; attempt 2: one call
        for d, delays in ((dists[0], (0, 80)), (dists[1], (0,))):
            for row, delay in zip(d.agents, delays, strict=False):
                row.status = "WORKING"
                row.started_at = d.started_at + dt.timedelta(milliseconds=delay)
        session.commit()
        answered = dists[1].started_at + dt.timedelta(seconds=2)
        session.execute(
            update(JobDistributionRecord)
            .where(JobDistributionRecord.id == dists[1].id)
            .values(status="COMPLETED", first_result_at=answered)
        )
        for status in ("DISTRIBUTED", "IN_PROGRESS"):
            session.execute(update(Job).where(Job.id == job.id).values(status=status))
        assert stored(session, job.id) == (None,) * 6
        session.execute(update(Job).where(Job.id == job.id).values(
            status="COMPLETED", finished_at=at + dt.timedelta(seconds=30)))  # fmt: skip
        session.commit()
        session.expire_all()
        facts = stored(session, job.id)
        assert facts == expected(session, job.id)
        assert facts[0] == 2 and facts[3:] == (3, 3, 80.0)
        # After the end: a start corrected, then the first attempt removed.
        first = dists[0].agents[1]
        first.started_at = dists[0].started_at + dt.timedelta(milliseconds=20)
        session.commit()
        assert stored(session, job.id)[5] == 20.0
        session.execute(delete(JobDistributionAgent).where(
            JobDistributionAgent.distribution_id == dists[0].id))  # fmt: skip
        session.execute(delete(JobDistributionRecord).where(
            JobDistributionRecord.id == dists[0].id))  # fmt: skip
        session.commit()
        session.expire_all()
        assert stored(session, job.id) == expected(session, job.id)
        assert stored(session, job.id)[0] == 1 and stored(session, job.id)[3:] == (1, 2, 0.0)
    check_all(engine)


def test_migration_backfills_an_existing_history(engine: Engine) -> None:
    """Down to 0009, a history written without the facts, up again: the backfill computes
    them, and the other migrations' triggers on the same tables are still there."""
    from alembic import command

    from agent_dispatch.db.migrate import alembic_config

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009_backlog")
    with Session(engine) as session:
        seed_history(session, B)
    upgrade(engine)
    assert check_all(engine) == 11
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            names = conn.scalars(text("SELECT tgname FROM pg_trigger")).all()
            assert "ad_agent_in_flight_ins_del" in names
        else:
            names = conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
            assert "ad_in_flight_insert" in set(names)
