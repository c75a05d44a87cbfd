"""The change log follows its transaction: written at commit, gone with a rollback, and gone
with a savepoint that rolls back (intake stores each queue item in a savepoint of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from agent_dispatch.db.change_log import read_after, record_agent, record_job
from agent_dispatch.db.migrate import upgrade


@pytest.fixture
def engine(tmp_path: object) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path}/log.db")
    upgrade(eng)
    yield eng
    eng.dispose()


def logged(engine: Engine) -> list[tuple[str, str | None, str]]:
    with Session(engine) as session:
        return [(c.queue_task_id, c.agent, c.status) for c in read_after(session, 0)]


def test_changes_are_written_when_their_transaction_commits(engine: Engine) -> None:
    with Session(engine) as session:
        record_job(session, "j1", "t1", "DISTRIBUTED", {"error": None})
        record_agent(session, "j1", "t1", "a1", "alpha", "WORKING", latencyMs=None)
        assert logged(engine) == []  # not before the commit
        session.commit()
    assert logged(engine) == [("t1", None, "DISTRIBUTED"), ("t1", "alpha", "WORKING")]


def test_a_rolled_back_transaction_leaves_no_change(engine: Engine) -> None:
    with Session(engine) as session:
        session.execute(text("SELECT 1"))  # as a status write would, it begins the transaction
        record_job(session, "j1", "t1", "DISTRIBUTED", {})
        session.rollback()
        record_job(session, "j2", "t2", "OPEN", {})
        session.commit()
    assert logged(engine) == [("t2", None, "OPEN")]


def test_a_rolled_back_savepoint_takes_its_changes_along(engine: Engine) -> None:
    with Session(engine) as session:
        record_job(session, "j1", "t1", "OPEN", {})
        kept = session.begin_nested()
        record_job(session, "j2", "t2", "OPEN", {})
        kept.commit()
        dropped = session.begin_nested()
        record_job(session, "j3", "t3", "OPEN", {})
        dropped.rollback()
        record_job(session, "j4", "t4", "OPEN", {})
        session.commit()
    assert [qid for qid, _, _ in logged(engine)] == ["t1", "t2", "t4"]


def test_long_errors_are_shortened_in_the_change(engine: Engine) -> None:
    with Session(engine) as session:
        record_job(session, "j1", "t1", "FAILED", {"error": "x" * 5000})
        session.commit()
        (change,) = read_after(session, 0)
    assert len(change.detail["error"]) == 500 and change.detail["error"].endswith("…")
