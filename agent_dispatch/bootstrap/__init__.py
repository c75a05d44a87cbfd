"""The one place that wires settings, the database engine, the HTTP clients and the event
sink into the `Deps` that services take. Entry points, flows and tasks resolve their
dependencies here; services never do."""

from __future__ import annotations

import asyncio
import os
import socket
import weakref
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agent_dispatch.bootstrap.prefect_events import PrefectEvents
from agent_dispatch.bootstrap.secrets import SecretTokens
from agent_dispatch.clients.agent import AgentClient
from agent_dispatch.clients.bearer import TokenSource
from agent_dispatch.clients.listing_writes import ListingWrites
from agent_dispatch.clients.netguard import NetGuard
from agent_dispatch.clients.protocols import AgentClients
from agent_dispatch.clients.queue import RemoteQueueClient
from agent_dispatch.clients.retry import RetryPolicy
from agent_dispatch.db.engine import make_engine, make_session_factory
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.services.deps import EventSink, secret_block_of
from agent_dispatch.settings import Settings, get_settings

if TYPE_CHECKING:
    from agent_dispatch.clients.a2a import A2AClient


class Runtime:
    """Settings, engine and per-event-loop HTTP clients for one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        queue_transport: httpx.AsyncBaseTransport | None = None,
        agent_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.engine: Engine = make_engine(settings.effective_database_url)
        self.session_factory: sessionmaker[Session] = make_session_factory(
            self.engine, settings.change_log_keep
        )
        self._queue_transport = queue_transport
        self._agent_transport = agent_transport
        # httpx async clients belong to one event loop; the CLI, tests and Prefect may use several.
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RemoteQueueClient] = (
            weakref.WeakKeyDictionary()
        )
        self._agents: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AgentClients] = (
            weakref.WeakKeyDictionary()
        )
        self._holds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = (
            weakref.WeakKeyDictionary()
        )
        self.worker_name = settings.worker_name or f"{socket.gethostname()}:{os.getpid()}"
        self.events: EventSink = PrefectEvents()
        # Shared by this runtime's queue clients on every loop: what the drain must see.
        self.listing_writes = ListingWrites()
        self.secrets = SecretTokens(settings.secret_cache_seconds)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def queue(self) -> RemoteQueueClient:
        loop = asyncio.get_running_loop()
        client = self._queues.get(loop)
        if client is None:
            s = self.settings
            client = RemoteQueueClient(
                s.remote_queue_url,
                self.queue_token(),
                transport=self._queue_transport,
                timeout=s.queue_timeout_seconds,
                retry=RetryPolicy(attempts=s.execution_retry_count + 2),
                listing_writes=self.listing_writes,
            )
            self._queues[loop] = client
        return client

    def agents(self) -> AgentClients:
        """This loop's agent client, for every protocol (A2A made on first use)."""
        loop = asyncio.get_running_loop()
        client = self._agents.get(loop)
        if client is None:
            s = self.settings
            common: dict[str, Any] = {
                "transport": self._agent_transport,
                "max_response_bytes": s.agent_max_response_bytes,
                "retry": RetryPolicy(attempts=s.execution_retry_count),
                "net_guard": self.net_guard(),
            }

            def make_a2a() -> A2AClient:
                from agent_dispatch.clients.a2a import A2AClient

                return A2AClient(**common)

            client = AgentClients(AgentClient(**common), make_a2a)
            self._agents[loop] = client
        return client

    def net_guard(self) -> NetGuard | None:
        """SSRF guard for agent calls (checked, pinned addresses); None allows private ones."""
        if self.settings.agent_allow_private_networks:
            return None
        return NetGuard()

    def queue_token(self) -> str | TokenSource:
        """REMOTE_QUEUE_TOKEN_SECRET's block, read per request (cached), else the variable."""
        block = self.settings.remote_queue_token_secret
        if block:
            return self.secrets.source(block)
        return self.settings.remote_queue_token.get_secret_value()

    async def agent_token(self, token_ref: str | None) -> str | None:
        """`secret-block:NAME` reads that Secret block (cached); other refs are AGENT_TOKENS
        keys, and an unknown key means no token, as it always has."""
        if not token_ref:
            return None
        block = secret_block_of(token_ref)
        if block is not None:
            return await self.secrets.get(block)
        secret = self.settings.agent_tokens.get(token_ref)
        return secret.get_secret_value() if secret else None

    def hold_clients(self) -> None:
        """A flow run uses this loop's clients until its `aclose_clients()`. Runs sharing a
        loop (started together in one process) must not close them under each other: the
        last one to end closes them."""
        loop = asyncio.get_running_loop()
        self._holds[loop] = self._holds.get(loop, 0) + 1

    async def aclose_clients(self) -> None:
        """Close this loop's HTTP clients (end of a flow run, or of a CLI command)."""
        loop = asyncio.get_running_loop()
        held = self._holds.pop(loop, 0)
        if held > 1:
            self._holds[loop] = held - 1
            return
        for registry in (self._queues, self._agents):
            client = registry.pop(loop, None)
            if client is not None:
                await client.aclose()

    def dispose(self) -> None:
        self.engine.dispose()


_runtime: Runtime | None = None


class ConfigurationError(Exception):
    """A setting is missing or invalid; the message is one line naming it."""


def get_runtime() -> Runtime:
    """The process runtime, built from the environment on first use.

    Bad settings raise ConfigurationError with one line, so a misconfigured worker's flow run
    fails with that line rather than a validation dump.
    """
    global _runtime
    if _runtime is None:
        try:
            settings = get_settings()
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]).upper()
            raise ConfigurationError(f"invalid setting {field}: {first['msg']}") from None
        _runtime = Runtime(settings)
    return _runtime


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Install a runtime (CLI, demo, tests); returns the previous one."""
    global _runtime
    previous, _runtime = _runtime, runtime
    return previous
