"""Service-test fixtures: no Prefect. Each test gets its own SQLite file, copied from one
migrated template (a file copy, not a migration run), and loopback simulators when it asks."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import QUEUE_TOKEN, make_settings
from tests.support.service_deps import TestDeps


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "migrated.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection closing folds the WAL into the file we copy
    return path


@pytest.fixture
async def make_deps(
    sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[Callable[..., TestDeps]]:
    """Build deps on this test's database; keyword arguments override settings."""
    db = tmp_path / "db.sqlite"
    shutil.copyfile(sqlite_template, db)
    made: list[TestDeps] = []

    def build(**overrides: Any) -> TestDeps:
        base: dict[str, Any] = {
            "remote_queue_url": "http://127.0.0.1:9",  # nothing listens: tests that talk
            "remote_queue_token": QUEUE_TOKEN,  # to a queue ask for the `queue` fixture
            "execution_retry_count": 0,
            "job_max_attempts": 3,
        }
        deps = TestDeps(make_settings(f"sqlite:///{db}", **{**base, **overrides}))
        made.append(deps)
        return deps

    yield build
    for deps in made:
        await deps.aclose()


@pytest.fixture
def deps(make_deps: Callable[..., TestDeps], queue: SimulatedQueue) -> TestDeps:
    """Deps talking to the loopback queue (agents are reached by the URLs they register)."""
    return make_deps(remote_queue_url=queue.url)


@pytest.fixture
def add_agent(deps: TestDeps, farm: AgentFarm) -> Callable[..., str]:
    """Start a simulated agent and register it; returns its agent id."""

    def add(
        name: str,
        behaviour: str = "fast",
        *,
        categories: tuple[str, ...] = ("general",),
        max_concurrency: int = 5,
        **fields: Any,
    ) -> str:
        farm.add(name, behaviour)
        with deps.uow() as uow:
            agent = uow.agents.add(
                Agent(
                    name=name,
                    url=farm.url_for(name),
                    categories=list(categories),
                    skill_level=3,
                    max_concurrency=max_concurrency,
                    **fields,
                )
            )
            uow.commit()
            return agent.id

    return add
