"""What every service needs, as one explicit argument.

Services take a `Deps` and import neither Prefect nor a process-wide runtime: the bootstrap
(agent_dispatch.bootstrap.Runtime) builds the real one; tests build fakes or real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from agent_dispatch.clients.protocols import AgentClients
from agent_dispatch.clients.queue import RemoteQueueClient
from agent_dispatch.db.uow import UnitOfWork, must_retry
from agent_dispatch.settings import Settings

T = TypeVar("T")

# An agent's token_ref in this form names a Prefect Secret block (read at run time by the
# bootstrap); any other token_ref is a key of AGENT_TOKENS.
BLOCK_REF_PREFIX = "secret-block:"


def block_ref(block: str) -> str:
    """The token_ref that names a Secret block."""
    return BLOCK_REF_PREFIX + block


def secret_block_of(token_ref: str | None) -> str | None:
    """The Secret block a token_ref names, or None when it is an AGENT_TOKENS key."""
    if token_ref and token_ref.startswith(BLOCK_REF_PREFIX):
        return token_ref[len(BLOCK_REF_PREFIX) :]
    return None


class EventSink(Protocol):
    """Where status changes are announced (Prefect events in production, a list in tests).

    A sink never raises: events are a feed, never a reason to fail a job.
    """

    def job_changed(self, job_id: str, queue_task_id: str, status: str, **detail: Any) -> None: ...

    def agent_changed(
        self,
        job_id: str,
        queue_task_id: str,
        agent_id: str | None,
        agent_name: str,
        status: str,
        **detail: Any,
    ) -> None: ...


class Deps(Protocol):
    """Settings, a unit of work per transaction, the HTTP clients and the event sink."""

    @property
    def settings(self) -> Settings: ...

    @property
    def worker_name(self) -> str: ...

    @property
    def events(self) -> EventSink: ...

    def uow(self) -> UnitOfWork: ...

    def queue(self) -> RemoteQueueClient: ...

    def agents(self) -> AgentClients: ...

    async def agent_token(self, token_ref: str | None) -> str | None:
        """The bearer token an agent's `token_ref` names (None: no token); raises
        TokenUnavailable when it names a Secret block that cannot be read now."""
        ...


DEADLOCK_ATTEMPTS = 3  # a deadlock's victim is rolled back whole; it runs again, at most this often


async def in_transaction(deps: Deps, work: Callable[[UnitOfWork], T]) -> T:
    """Run `work(uow)` in a worker thread inside one committed transaction.

    A transaction PostgreSQL rolled back as a deadlock's victim runs again (`must_retry`):
    `work` must therefore keep its effects inside the transaction (or reset them on entry).

    Database calls are blocking; running them off the event loop keeps concurrent agent
    calls moving while a transaction waits on a lock or a disk.
    """

    def run() -> T:
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                with deps.uow() as uow:
                    result = work(uow)
                    uow.commit()
                    return result
            except Exception as exc:
                if attempt == DEADLOCK_ATTEMPTS or not must_retry(exc):
                    raise
        raise AssertionError("unreachable")

    return await asyncio.to_thread(run)


class NullEvents:
    """An event sink that drops everything (tools and tests that do not watch events)."""

    def job_changed(self, job_id: str, queue_task_id: str, status: str, **detail: Any) -> None:
        return None

    def agent_changed(
        self,
        job_id: str,
        queue_task_id: str,
        agent_id: str | None,
        agent_name: str,
        status: str,
        **detail: Any,
    ) -> None:
        return None
