"""The `Deps` that services take, built for tests without Prefect: a database URL, clients
pointed at loopback simulators, and an event sink that records what it is told."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from agent_dispatch.clients.a2a import A2AClient
from agent_dispatch.clients.agent import AgentClient
from agent_dispatch.clients.errors import TokenUnavailable
from agent_dispatch.clients.protocols import AgentClients
from agent_dispatch.clients.queue import RemoteQueueClient
from agent_dispatch.clients.retry import RetryPolicy
from agent_dispatch.db.engine import make_engine, make_session_factory
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.services.deps import secret_block_of
from agent_dispatch.settings import Settings


@dataclasses.dataclass(frozen=True, slots=True)
class Announced:
    kind: str  # "job" or "agent"
    job_id: str
    queue_task_id: str
    status: str
    agent_name: str | None
    detail: dict[str, Any]


class RecordingEvents:
    """An `EventSink` that keeps every announcement, in order."""

    def __init__(self) -> None:
        self.seen: list[Announced] = []

    def job_changed(self, job_id: str, queue_task_id: str, status: str, **detail: Any) -> None:
        self.seen.append(Announced("job", job_id, queue_task_id, str(status), None, detail))

    def agent_changed(
        self,
        job_id: str,
        queue_task_id: str,
        agent_id: str | None,
        agent_name: str,
        status: str,
        **detail: Any,
    ) -> None:
        self.seen.append(Announced("agent", job_id, queue_task_id, str(status), agent_name, detail))

    def statuses(self, kind: str, name: str) -> list[str]:
        """Statuses announced for one job (by queue task id) or one agent (by name)."""
        return [
            a.status
            for a in self.seen
            if a.kind == kind and (a.queue_task_id if kind == "job" else a.agent_name) == name
        ]

    def jobs(self) -> list[tuple[str, str]]:
        """(queue task id, status) of every job announcement."""
        return [(a.queue_task_id, a.status) for a in self.seen if a.kind == "job"]


class TestDeps:
    """Settings, a unit of work per transaction, HTTP clients per event loop, and events.

    httpx clients belong to the loop that made them (a test's loop, or the loop of a CLI
    command the test runs): `aclose()` closes the current loop's clients and drops the rest.
    """

    __test__ = False  # not a test class, whatever its name

    def __init__(self, settings: Settings, worker_name: str = "svc-test") -> None:
        self.settings = settings
        self.worker_name = worker_name
        self.events = RecordingEvents()
        self.engine = make_engine(settings.effective_database_url)
        self._factory = make_session_factory(self.engine)
        self._queues: dict[asyncio.AbstractEventLoop, RemoteQueueClient] = {}
        self._agents: dict[asyncio.AbstractEventLoop, AgentClients] = {}
        self.secret_blocks: dict[str, str] = {}

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self._factory)

    def queue(self) -> RemoteQueueClient:
        loop = asyncio.get_running_loop()
        if loop not in self._queues:
            s = self.settings
            self._queues[loop] = RemoteQueueClient(
                s.remote_queue_url,
                s.remote_queue_token.get_secret_value(),
                timeout=s.queue_timeout_seconds,
                retry=RetryPolicy(attempts=s.execution_retry_count + 2),
            )
        return self._queues[loop]

    def agents(self) -> AgentClients:
        loop = asyncio.get_running_loop()
        if loop not in self._agents:
            retry = RetryPolicy(attempts=self.settings.execution_retry_count)

            def make_a2a() -> A2AClient:
                return A2AClient(retry=retry)

            self._agents[loop] = AgentClients(AgentClient(retry=retry), make_a2a)
        return self._agents[loop]

    async def agent_token(self, token_ref: str | None) -> str | None:
        block = secret_block_of(token_ref)
        if block is not None:  # a stand-in for Prefect's Secret blocks: `secret_blocks`
            if block not in self.secret_blocks:
                raise TokenUnavailable(f"secret block {block!r} not found on the Prefect server")
            return self.secret_blocks[block]
        secret = self.settings.agent_tokens.get(token_ref or "")
        return secret.get_secret_value() if secret else None

    async def aclose_clients(self) -> None:
        """Close this loop's clients (what a CLI command does at its end)."""
        loop = asyncio.get_running_loop()
        for registry in (self._queues, self._agents):
            client = registry.pop(loop, None)
            if client is not None:
                await client.aclose()

    async def aclose(self) -> None:
        await self.aclose_clients()
        self._queues.clear()
        self._agents.clear()
        self.engine.dispose()
