"""The runtime the PostgreSQL tests of the services use: the test's database and the loopback
queue (a module that needs other settings defines its own `rt`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import QUEUE_TOKEN, make_settings
from tests.support.runtimes import installed


@pytest.fixture
def rt(database_url: str, queue: SimulatedQueue) -> Iterator[Runtime]:
    settings = make_settings(
        database_url, remote_queue_url=queue.url, remote_queue_token=QUEUE_TOKEN
    )
    with installed(Runtime(settings)) as runtime:
        yield runtime
