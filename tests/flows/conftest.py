"""Flow-test fixtures: a real loopback queue and agent farm, the runtime pointed at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prefect.events.clients import AssertingEventsClient
from prefect.events.schemas.events import Event
from prefect.events.worker import EventsWorker

from agent_dispatch.bootstrap import Runtime, set_runtime
from agent_dispatch.db.models import Agent
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import QUEUE_TOKEN, make_settings


@pytest.fixture
def make_runtime(
    database_url: str, queue: SimulatedQueue, prefect_harness: None
) -> Iterator[Callable[..., Runtime]]:
    """Build (and install) a runtime for the flow under test; overrides go to Settings."""
    made: list[Runtime] = []

    def build(**overrides: Any) -> Runtime:
        settings = make_settings(
            database_url,
            **{"remote_queue_url": queue.url, "remote_queue_token": QUEUE_TOKEN, **overrides},
        )
        rt = Runtime(settings)
        set_runtime(rt)
        made.append(rt)
        return rt

    yield build
    for rt in made:
        rt.dispose()
    set_runtime(None)


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime()


# For tests that count takes and outcomes, not time: an agent call gets 30 s, not the suite's
# 3 s. A job's deadline starts before its task runs are created, and a machine loaded by the
# rest of the suite has spent 3 s on that for one job of many at once.
PATIENT_MS = 30_000


@pytest.fixture
def patient_rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime(default_agent_timeout=PATIENT_MS)


@pytest.fixture
def add_agent(farm: AgentFarm) -> Callable[..., str]:
    """Start a simulated agent and register it; returns its agent id."""
    from agent_dispatch.bootstrap import get_runtime

    def add(
        name: str,
        behaviour: str = "fast",
        *,
        categories: tuple[str, ...] = ("general",),
        tags: tuple[str, ...] = (),
        skill_level: int = 3,
        max_concurrency: int = 5,
        **stats: Any,
    ) -> str:
        farm.add(name, behaviour)
        with get_runtime().uow() as uow:
            agent = uow.agents.add(
                Agent(
                    name=name,
                    url=farm.url_for(name),
                    categories=list(categories),
                    tags=list(tags),
                    skill_level=skill_level,
                    max_concurrency=max_concurrency,
                    **stats,
                )
            )
            uow.commit()
            return agent.id

    return add


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[Event]]]:
    """What the flow emits, with the related resources Prefect attaches from the run context.

    Prefect's own task-run state events are kept too: they are what the server builds its
    task runs from (the events never reach it here, so they are read from the recording)."""
    worker = EventsWorker.instance(AssertingEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)

    def drained() -> list[Event]:
        worker.wait_until_empty()
        client = worker._client
        assert isinstance(client, AssertingEventsClient)
        return list(client.events)

    try:
        yield drained
    finally:
        worker.drain()
