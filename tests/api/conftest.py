"""API fixtures: the real app on a real uvicorn server (a thread, a free loopback port), over
a fresh PostgreSQL database, with the loopback queue and agent farm of the flow tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from agent_dispatch.api import create_app
from agent_dispatch.bootstrap import Runtime, set_runtime
from agent_dispatch.db.models import Agent
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import QUEUE_TOKEN, make_settings

API_TOKEN = "api-test-token-7f3a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    rt: Runtime
    token: str | None

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/ws"

    def client(self, token: str | None = "default") -> httpx.Client:
        """A client sending `token` (the server's own by default; None: no header)."""
        use = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {use}"} if use else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False)


class ApiServer:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                log_level="info", timeout_graceful_shutdown=2)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def serve(database_url: str, queue: SimulatedQueue) -> Iterator[Callable[..., Served]]:
    """Start the API with settings overrides; `api_token` defaults to API_TOKEN."""
    stack: list[tuple[ApiServer, Runtime]] = []

    def start(report_dir: Path | None = None, url: str | None = None, **overrides: Any) -> Served:
        overrides.setdefault("api_token", API_TOKEN)
        settings = make_settings(
            url or database_url,
            **{"remote_queue_url": queue.url, "remote_queue_token": QUEUE_TOKEN, **overrides},
        )
        rt = Runtime(settings)
        set_runtime(rt)  # flows started in-process (POST /api/runs) use the same runtime
        server = ApiServer(create_app(lambda: rt, report_dir=report_dir))
        base = server.__enter__()
        stack.append((server, rt))
        return Served(base, rt, settings.api_token.get_secret_value() or None)

    yield start
    for server, rt in reversed(stack):
        server.__exit__()
        rt.dispose()
    set_runtime(None)


@pytest.fixture
def api(serve: Callable[..., Served]) -> Served:
    return serve()


@pytest.fixture
def add_agent(farm: AgentFarm) -> Callable[..., str]:
    """Start a simulated agent and register it directly in `rt`'s database."""

    def add(rt: Runtime, name: str, behaviour: str = "fast", **fields: Any) -> str:
        farm.add(name, behaviour)
        with rt.uow() as uow:
            agent = uow.agents.add(
                Agent(
                    name=name,
                    url=farm.url_for(name),
                    **{"categories": ["general"], "skill_level": 3, "max_concurrency": 5, **fields},
                )
            )
            uow.commit()
            return agent.id

    return add
