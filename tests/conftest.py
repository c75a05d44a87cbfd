"""Shared fixtures: a fresh PostgreSQL database per test, the runtime, one Prefect harness."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from agent_dispatch.settings import Settings
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.postgres import DatabaseFactory, admin_url

if TYPE_CHECKING:  # the bootstrap imports Prefect: seconds that service and unit tests skip
    from agent_dispatch.bootstrap import Runtime

# Prefect reads its own settings from the environment; keep test runs offline and quiet.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked slow run first. scripts/test hands tests to its processes one at a time
    (--maxschedchunk 1), so the long ones (up to minutes each on a loaded 2-core machine)
    start early, spread over every process, and the many short ones fill the end, instead
    of one long test starting last and the whole run waiting on it."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


@pytest.fixture(scope="session")
def pg_factory() -> Iterator[DatabaseFactory]:
    with admin_url() as admin:
        factory = DatabaseFactory(admin)
        factory.prepare_template()
        try:
            yield factory
        finally:
            factory.close()


@pytest.fixture
def database_url(pg_factory: DatabaseFactory) -> Iterator[str]:
    """A plain postgresql:// URL to a fresh, migrated database of its own."""
    from agent_dispatch.bootstrap import set_runtime

    url = pg_factory.new()
    try:
        yield url
    finally:
        set_runtime(None)
        pg_factory.drop(url)


QUEUE_TOKEN = "loopback-queue-token"  # the token every loopback queue of the tests demands


@pytest.fixture
def queue() -> Iterator[SimulatedQueue]:
    """The remote queue of the contract, served on loopback (real HTTP)."""
    q = SimulatedQueue(QUEUE_TOKEN)
    with q.serve():
        yield q


@pytest.fixture
def farm() -> Iterator[AgentFarm]:
    """http-json agents of the contract, served on loopback; add them with `farm.add`."""
    f = AgentFarm()
    with f.serve():
        yield f


def make_settings(database_url: str, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "database_url": database_url,
        "agent_allow_private_networks": True,  # test agents live on loopback
        "remote_queue_token": "test-token",
        "default_agent_timeout": 3000,
        "execution_retry_count": 2,
        # Each racing job polls its lease this often (a transaction each): quick enough for
        # cancels to land fast, rare enough not to load a machine running three workers.
        "lease_check_seconds": 0.5,
        "worker_name": "pytest",
    }
    base.update(overrides)
    return Settings.model_validate(base)


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    from agent_dispatch.bootstrap import Runtime
    from tests.support.runtimes import installed

    with installed(Runtime(make_settings(database_url))) as rt:
        yield rt


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One ephemeral Prefect server for the whole session (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
