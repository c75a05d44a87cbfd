"""A transaction PostgreSQL rolled back as a deadlock's victim runs again; other errors do not."""

from __future__ import annotations

from types import SimpleNamespace, TracebackType
from typing import Any

import pytest
from psycopg import errors as pg_errors
from sqlalchemy.exc import OperationalError

from agent_dispatch.services.deps import DEADLOCK_ATTEMPTS, in_transaction


class FakeUow:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __enter__(self) -> FakeUow:
        self.log.append("begin")
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.log.append("end")

    def commit(self) -> None:
        self.log.append("commit")


def deps(log: list[str]) -> Any:
    return SimpleNamespace(uow=lambda: FakeUow(log))


def failing(kind: type[Exception], times: int, log: list[str]) -> Any:
    calls = {"n": 0}

    def work(uow: FakeUow) -> str:
        calls["n"] += 1
        log.append(f"work {calls['n']}")
        if calls["n"] <= times:
            raise OperationalError("UPDATE agents ...", {}, kind("deadlock detected"))
        return "done"

    return work


async def test_a_deadlock_victim_runs_again_and_commits() -> None:
    log: list[str] = []
    assert await in_transaction(deps(log), failing(pg_errors.DeadlockDetected, 1, log)) == "done"
    assert log == ["begin", "work 1", "end", "begin", "work 2", "commit", "end"]


async def test_a_transaction_that_keeps_deadlocking_gives_up_after_the_last_attempt() -> None:
    log: list[str] = []
    work = failing(pg_errors.DeadlockDetected, DEADLOCK_ATTEMPTS, log)
    with pytest.raises(OperationalError, match="deadlock"):
        await in_transaction(deps(log), work)
    assert log.count("begin") == DEADLOCK_ATTEMPTS and "commit" not in log


async def test_other_database_errors_are_not_run_again() -> None:
    log: list[str] = []
    with pytest.raises(OperationalError):
        await in_transaction(deps(log), failing(pg_errors.UniqueViolation, 1, log))
    assert log == ["begin", "work 1", "end"]
