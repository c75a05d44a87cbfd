"""The fast tier: services on SQLite (a migrated template file copied per test), real loopback
simulators, no Prefect. PostgreSQL stays for locking, leases and concurrency."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import make_settings

TOKEN = "services-test-token"


class RecordingEvents:
    """An event sink that keeps every event as (kind, name, status, detail)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict[str, Any]]] = []

    def job_changed(self, job_id: str, queue_task_id: str, status: str, **detail: Any) -> None:
        self.seen.append(("job", queue_task_id, status, detail))

    def agent_changed(
        self,
        job_id: str,
        queue_task_id: str,
        agent_id: str | None,
        agent_name: str,
        status: str,
        **detail: Any,
    ) -> None:
        self.seen.append(("agent", agent_name, status, detail))

    def statuses(self, kind: str, name: str) -> list[str]:
        return [s for k, n, s, _ in self.seen if k == kind and n == name]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "test.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def queue() -> Iterator[SimulatedQueue]:
    q = SimulatedQueue(TOKEN)
    with q.serve():
        yield q


@pytest.fixture
def farm() -> Iterator[AgentFarm]:
    f = AgentFarm()
    with f.serve():
        yield f


@pytest.fixture
def make_deps(sqlite_url: str, queue: SimulatedQueue) -> Iterator[Callable[..., Runtime]]:
    """Real dependencies on SQLite and the loopback queue; overrides go to Settings."""
    made: list[Runtime] = []

    def build(**overrides: Any) -> Runtime:
        settings = make_settings(
            sqlite_url, **{"remote_queue_url": queue.url, "remote_queue_token": TOKEN, **overrides}
        )
        rt = Runtime(settings)
        rt.events = RecordingEvents()
        made.append(rt)
        return rt

    yield build
    for rt in made:
        rt.dispose()


@pytest.fixture
def deps(make_deps: Callable[..., Runtime]) -> Runtime:
    return make_deps()


@pytest.fixture
def add_agent(deps: Runtime, farm: AgentFarm) -> Callable[..., str]:
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
