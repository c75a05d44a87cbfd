"""Loopback A2A agents built from a2a-sdk's own server parts (needs `agent-dispatch[a2a]`).

Each agent is an AgentExecutor behind the sdk's DefaultRequestHandler, its JSON-RPC route
and its agent-card route, mounted at /agents/{name}/ of one Starlette app served on a
free loopback port in a background thread (simulators.server.serve_in_thread). Its card
is at /agents/{name}/.well-known/agent-card.json (or agent.json for an older agent).

Kinds: fast, slow (cannot cancel), cancellable (honours CancelTask), failing, rejecting,
input_required, direct (answers with a message, no task). The farm records the messages
and the cancels each agent received.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal, get_args

from a2a.helpers import new_data_part, new_task, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import TaskNotCancelableError
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from agent_dispatch.simulators.server import RunningServer, serve_in_thread

A2AKind = Literal[
    "fast",  # completed after `delay`, one artifact with one data part (and task score)
    "slow",  # completes after `delay` (long); CancelTask is refused: it cannot cancel
    "cancellable",  # like slow, but CancelTask stops it and it ends canceled
    "failing",  # failed, with `error` as the status message
    "rejecting",  # rejected, with `error` as the status message
    "input_required",  # stops in input-required, asking a question
    "direct",  # answers with a Message, no task
]
A2A_KINDS: tuple[str, ...] = get_args(A2AKind)
CARD_PATH = "/.well-known/agent-card.json"
OLD_CARD_PATH = "/.well-known/agent.json"


@dataclasses.dataclass(frozen=True, slots=True)
class A2ABehaviour:
    kind: A2AKind = "fast"
    delay: float = 0.02
    score: float | None = 0.8
    error: str = "simulated A2A failure"
    size: int = 0  # fast: > 0 adds a text part of this many bytes (size-cap tests)
    version: Literal["1.0", "0.3"] = "1.0"  # the protocol its card offers and it answers
    old_card_path: bool = False  # serve the card only at /.well-known/agent.json
    card: Any = None  # served verbatim as the card (malformed-card tests) when not None


_PRESETS: dict[str, dict[str, Any]] = {"slow": {"delay": 30.0}, "cancellable": {"delay": 30.0}}


def a2a_behaviour(kind: str, **params: Any) -> A2ABehaviour:
    if kind not in A2A_KINDS:
        raise ValueError(f"unknown A2A behaviour {kind!r}; known: {', '.join(A2A_KINDS)}")
    return A2ABehaviour(**{"kind": kind, **_PRESETS.get(kind, {}), **params})


@dataclasses.dataclass(frozen=True, slots=True)
class ReceivedMessage:
    agent: str
    message_id: str
    context_id: str
    task_id: str
    text: str
    data: Any  # the data parts' values


class _Records:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[ReceivedMessage] = []
        self.cancels: list[tuple[str, str]] = []  # (agent, task id)
        self.stopping = threading.Event()


class SimExecutor(AgentExecutor):
    """One simulated agent's work, as the sdk runs it."""

    def __init__(self, name: str, behaviour: A2ABehaviour, records: _Records) -> None:
        self.name = name
        self.behaviour = behaviour
        self.records = records

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        b, message = self.behaviour, context.message
        task_id, context_id = context.task_id or "", context.context_id or ""
        data = (
            [MessageToDict(p.data) for p in message.parts if p.HasField("data")] if message else []
        )
        with self.records.lock:
            self.records.messages.append(
                ReceivedMessage(
                    self.name,
                    message.message_id if message else "",
                    context_id,
                    task_id,
                    context.get_user_input(),
                    data,
                )
            )
        if b.kind == "direct":
            await event_queue.enqueue_event(
                new_text_message(f"{self.name} answered directly", context_id, task_id)
            )
            return
        task = new_task(task_id, context_id, pb.TaskState.TASK_STATE_SUBMITTED)
        if b.score is not None:
            task.metadata.update({"score": b.score})
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task_id, context_id)
        await updater.start_work()
        await self._wait(b.delay)
        say = updater.new_agent_message
        if b.kind == "failing":
            await updater.failed(say([new_text_part(b.error)]))
        elif b.kind == "rejecting":
            await updater.reject(say([new_text_part(b.error)]))
        elif b.kind == "input_required":
            await updater.requires_input(say([new_text_part("which language should I use?")]))
        else:
            job = data[0] if data and isinstance(data[0], dict) else {}
            answer = {"agent": self.name, "jobId": job.get("jobId"), "summary": "done"}
            parts = [new_data_part(answer)]
            if b.size > 0:
                parts.append(new_text_part("x" * b.size))
            await updater.add_artifact(parts, name="answer")
            await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        with self.records.lock:
            self.records.cancels.append((self.name, context.task_id or ""))
        if self.behaviour.kind != "cancellable":
            raise TaskNotCancelableError(message=f"{self.name} cannot stop once started")
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        await updater.cancel(updater.new_agent_message([new_text_part("canceled on request")]))

    async def _wait(self, seconds: float) -> None:
        # Short steps, so a stopping server does not wait for a 30 s job; `stopping` is a
        # threading.Event set from the test's thread, so there is no asyncio.Event to await.
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while not self.records.stopping.is_set() and loop.time() < end:  # noqa: ASYNC110
            await asyncio.sleep(min(0.05, end - loop.time()))


class A2AAgentFarm:
    """A2A agents at /agents/{name}/ on one loopback server; add them before `serve()`."""

    def __init__(self, agents: Mapping[str, A2ABehaviour | str] | None = None) -> None:
        self._records = _Records()
        self._agents: dict[str, A2ABehaviour] = {}
        self.base_url: str | None = None
        for name, behaviour in (agents or {}).items():
            self.add(name, behaviour)

    def add(self, name: str, behaviour: A2ABehaviour | str = "fast", **params: Any) -> None:
        """Add an agent; a string is a kind ("slow"), `params` override its knobs."""
        chosen = a2a_behaviour(behaviour, **params) if isinstance(behaviour, str) else behaviour
        self._agents[name] = chosen

    @contextlib.contextmanager
    def serve(self, port: int = 0) -> Iterator[RunningServer]:
        self._records.stopping.clear()
        routes: list[BaseRoute] = [
            Mount(f"/agents/{name}", app=self._agent_app(name, b))
            for name, b in self._agents.items()
        ]
        app = Starlette(routes=routes)
        try:
            with serve_in_thread(app, port, on_stop=self._records.stopping.set) as running:
                self.base_url = running.url
                yield running
        finally:
            self.base_url = None

    def url_for(self, name: str) -> str:
        if self.base_url is None:
            raise RuntimeError("the A2A farm is not being served")
        return f"{self.base_url}/agents/{name}"

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._records.lock:
            return list(self._records.messages)

    def cancels(self, name: str | None = None) -> list[str]:
        """Task ids whose CancelTask reached the agent (its executor's cancel), in order."""
        with self._records.lock:
            return [task for agent, task in self._records.cancels if name in (None, agent)]

    def _agent_app(self, name: str, b: A2ABehaviour) -> Starlette:
        card = self._card(name, b)
        handler = DefaultRequestHandler(
            agent_executor=SimExecutor(name, b, self._records),
            task_store=InMemoryTaskStore(),
            agent_card=card,
        )

        async def with_urls(served: pb.AgentCard) -> pb.AgentCard:
            # The port is known only once serving: fill the absolute URL per request.
            filled = pb.AgentCard()
            filled.CopyFrom(served)
            for iface in filled.supported_interfaces:
                iface.url = self.url_for(name) + "/"
            return filled

        path = OLD_CARD_PATH if b.old_card_path else CARD_PATH
        routes: list[BaseRoute]
        if b.card is not None:
            routes = [Route(path, _verbatim(b.card), methods=["GET"])]
        else:
            routes = list(create_agent_card_routes(card, card_modifier=with_urls, card_url=path))
        routes += create_jsonrpc_routes(handler, "/", enable_v0_3_compat=b.version == "0.3")
        return Starlette(routes=routes)

    @staticmethod
    def _card(name: str, b: A2ABehaviour) -> pb.AgentCard:
        return pb.AgentCard(
            name=name,
            description=f"simulated A2A agent ({b.kind})",
            version="1.0.0",
            supported_interfaces=[
                pb.AgentInterface(
                    url="http://placeholder/",
                    protocol_binding="JSONRPC",
                    protocol_version=b.version,
                )
            ],
            capabilities=pb.AgentCapabilities(streaming=False, push_notifications=False),
            default_input_modes=["text/plain", "application/json"],
            default_output_modes=["application/json", "text/plain"],
            skills=[
                pb.AgentSkill(
                    id="text",
                    name="Text work",
                    description="summaries and rewrites",
                    tags=["summary", "nlp"],
                ),
                pb.AgentSkill(
                    id="code", name="Code work", description="reviews", tags=["review", "nlp"]
                ),
            ],
        )


def _verbatim(card: Any) -> Any:
    async def serve(request: Request) -> Response:
        if isinstance(card, str):
            return PlainTextResponse(card, media_type="application/json")
        return JSONResponse(card)

    return serve
