"""The agent contract's endpoints for every agent of a farm, plus its admin summary."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from agent_dispatch.simulators.agent_answers import completed, drip, final_answer, huge, streamed
from agent_dispatch.simulators.asgi import (
    bearer_ok,
    error,
    observed,
    read_json,
    retry_after,
    wait_for_disconnect,
)
from agent_dispatch.simulators.behaviours import Behaviour
from agent_dispatch.simulators.farm_state import (
    AgentState,
    AsyncTask,
    CallRecord,
    CancelRecord,
    FarmState,
    job_problem,
)
from agent_dispatch.simulators.queue import ADMIN_PREFIX

Held = Literal["done", "cancelled", "disconnected", "stopping"]
_TICK_S = 0.02  # how soon a held request notices a cancel or a stop
_COUNTED = "simulators.counted"  # scope key: the agent whose in-flight count this request raised
_OPEN = "simulators.open"  # scope key: (agent, distributionId) of an open execute


def _agent_path(scope: Scope) -> tuple[str, str] | None:
    """(agent name, path below its base URL) for /agents/{name}/..., else None."""
    parts = scope["path"].split("/", 3)
    if len(parts) < 4 or parts[1] != "agents":
        return None
    return parts[2], "/" + parts[3]


def _text(body: Any, field: str) -> str | None:
    value = body.get(field) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _cancel_answer(status: int) -> Response:
    return JSONResponse({"cancelled": True}) if status == 200 else error(status, "cannot cancel")


class AgentEndpoints:
    def __init__(self, state: FarmState) -> None:
        self._state = state
        agent = "/agents/{agent}"
        router = Starlette(
            routes=[
                Route(agent + "/execute", self._execute, methods=["POST"]),
                Route(agent + "/tasks/{task_id}", self._poll, methods=["GET"]),
                Route(agent + "/tasks/{task_id}/cancel", self._cancel_task, methods=["POST"]),
                Route(agent + "/cancel", self._cancel, methods=["POST"]),
                Route(agent + "/health", self._health, methods=["GET"]),
                Route(ADMIN_PREFIX + "calls", self._admin_calls, methods=["GET"]),
            ]
        )
        self.app = observed(router, on_start=self._request_started, on_end=self._request_ended)

    # Bookkeeping around every request

    def _request_started(self, scope: Scope) -> None:
        where = _agent_path(scope)
        if where is None or where[1] != "/execute" or scope["method"] != "POST":
            return
        with self._state.lock:
            agent = self._state.agents.get(where[0])
            if agent is not None:
                agent.in_flight += 1
                agent.peak = max(agent.peak, agent.in_flight)
                scope[_COUNTED] = agent

    def _request_ended(self, scope: Scope, status: int | None) -> None:
        counted: AgentState | None = scope.get(_COUNTED)
        opened: tuple[AgentState, str] | None = scope.get(_OPEN)
        with self._state.lock:
            if counted is not None:
                counted.in_flight -= 1
            if opened is not None:
                agent, distribution = opened
                agent.open[distribution] -= 1
                if agent.open[distribution] <= 0:
                    del agent.open[distribution]

    def _admit(self, request: Request, body: Any) -> AgentState | Response:
        """Note the call, then find the agent and check its token."""
        name: str = request.path_params["agent"]
        where = _agent_path(request.scope)
        record = CallRecord(
            agent=name,
            method=request.method,
            path=where[1] if where else request.url.path,
            idempotency_key=request.headers.get("idempotency-key"),
            authorization="authorization" in request.headers,
            job_id=_text(body, "jobId"),
            distribution_id=_text(body, "distributionId"),
            at=time.monotonic(),
        )
        with self._state.lock:
            self._state.calls.append(record)
            agent = self._state.agents.get(name)
            token = None if agent is None else agent.token
        if agent is None:
            return error(404, f"no agent {name!r}")
        if not bearer_ok(request.headers, token):
            return error(401, "missing or wrong bearer token")
        return agent

    async def _hold(
        self, request: Request, agent: AgentState, distribution: str | None, seconds: float
    ) -> Held:
        """Wait `seconds`, ending early on /cancel for `distribution`, disconnect or server stop."""
        deadline = time.monotonic() + seconds
        gone = asyncio.ensure_future(wait_for_disconnect(request.receive))
        try:
            while True:
                if self._state.stopping.is_set():
                    return "stopping"
                if distribution is not None:
                    with self._state.lock:
                        if distribution in agent.cancelled:
                            return "cancelled"
                left = deadline - time.monotonic()
                if left <= 0:
                    return "done"
                done, _ = await asyncio.wait({gone}, timeout=min(left, _TICK_S))
                if done:
                    return "disconnected"
        finally:
            gone.cancel()

    # The contract's endpoints

    async def _execute(self, request: Request) -> Response:
        body = await read_json(request)
        admitted = self._admit(request, body)
        if isinstance(admitted, Response):
            return admitted
        agent = admitted
        key = request.headers.get("idempotency-key")
        if key is None:
            return error(400, "missing Idempotency-Key header")
        if (problem := job_problem(body, key)) is not None:
            return error(422, problem)
        job: dict[str, Any] = body
        distribution: str = job["distributionId"]
        with self._state.lock:
            request.scope[_OPEN] = (agent, distribution)
            agent.open[distribution] += 1
            agent.attempts[key] += 1
            attempt = agent.attempts[key]
            behaviour = agent.behaviour
            kind: str = behaviour.kind
            if kind == "flaky":
                kind = behaviour.fail_as if agent.rng.random() < behaviour.probability else "fast"
        if kind in ("rate_limited", "unavailable_then_ok") and attempt <= behaviour.times:
            status = 429 if kind == "rate_limited" else 503
            return error(status, "busy, try again later", retry_after(behaviour.retry_after))
        if kind == "async_poll":
            return self._accept(agent, behaviour, job, key)
        if kind == "drip":
            return streamed(self._counted(agent, drip(behaviour, self._state.stopping)))
        if kind == "huge":
            return streamed(self._counted(agent, huge(behaviour, self._state.stopping)))
        if kind == "hanging":
            await self._hold(request, agent, None, math.inf)
            return error(503, "stopped")
        if behaviour.delay > 0:
            held = await self._hold(request, agent, distribution, behaviour.delay)
            if held == "cancelled":
                return JSONResponse({"status": "FAILED", "error": "cancelled"})
            if held != "done":
                return error(503, "stopped")
        return final_answer(kind, agent.name, behaviour, job)

    async def _counted(
        self, agent: AgentState, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            with self._state.lock:
                agent.streamed_bytes += len(chunk)
            yield chunk

    def _accept(
        self, agent: AgentState, behaviour: Behaviour, job: dict[str, Any], key: str
    ) -> Response:
        # A retry with the same Idempotency-Key gets the same task, as a real agent should do.
        with self._state.lock:
            task_id = agent.task_by_key.get(key)
            if task_id is None:
                task_id = f"{agent.name}-task-{next(self._state.task_numbers)}"
                agent.tasks[task_id] = AsyncTask(task_id, job)
                agent.task_by_key[key] = task_id
        accepted = {"status": "WORKING", "taskId": task_id, "pollAfterMs": behaviour.poll_after_ms}
        return JSONResponse(accepted, status_code=202)

    async def _poll(self, request: Request) -> Response:
        admitted = self._admit(request, None)
        if isinstance(admitted, Response):
            return admitted
        with self._state.lock:
            task = admitted.tasks.get(request.path_params["task_id"])
            if task is None:
                return error(404, "no such task")
            task.polls += 1
            behaviour = admitted.behaviour
            if task.cancelled:
                task.final = True
                answer: dict[str, Any] = {"status": "FAILED", "error": "cancelled"}
            elif task.polls <= behaviour.times:
                answer = {"status": "WORKING"}
            else:
                task.final = True
                answer = completed(admitted.name, behaviour, task.job)
        return JSONResponse(answer)

    async def _cancel_task(self, request: Request) -> Response:
        admitted = self._admit(request, None)
        if isinstance(admitted, Response):
            return admitted
        task_id: str = request.path_params["task_id"]
        with self._state.lock:
            task = admitted.tasks.get(task_id)
            status = admitted.behaviour.cancel_status
            if task is None and status == 200:
                status = 404
            while_open = task is not None and not task.final
            if task is not None and status == 200 and while_open:
                task.cancelled = True
            job = {} if task is None else task.job
            record = CancelRecord(
                admitted.name,
                _text(job, "distributionId"),
                _text(job, "jobId"),
                task_id,
                while_open,
                status,
                time.monotonic(),
            )
            self._state.cancels.append(record)
        return _cancel_answer(status)

    async def _cancel(self, request: Request) -> Response:
        body = await read_json(request)
        admitted = self._admit(request, body)
        if isinstance(admitted, Response):
            return admitted
        distribution = _text(body, "distributionId")
        if distribution is None:
            return error(422, "distributionId is required")
        with self._state.lock:
            status = admitted.behaviour.cancel_status
            while_open = admitted.open.get(distribution, 0) > 0
            if status == 200:
                admitted.cancelled.add(distribution)
            record = CancelRecord(
                admitted.name,
                distribution,
                _text(body, "jobId"),
                None,
                while_open,
                status,
                time.monotonic(),
            )
            self._state.cancels.append(record)
        return _cancel_answer(status)

    async def _health(self, request: Request) -> Response:
        admitted = self._admit(request, None)
        if isinstance(admitted, Response):
            return admitted
        with self._state.lock:
            behaviour, busy = admitted.behaviour, admitted.in_flight
        if behaviour.kind == "unhealthy":
            return JSONResponse({"status": "down"}, status_code=503)
        capacity = behaviour.capacity
        load = min(1.0, busy / capacity) if capacity > 0 else 1.0
        return JSONResponse({"status": "ok", "load": load, "capacity": max(0, capacity - busy)})

    async def _admin_calls(self, request: Request) -> Response:
        return JSONResponse(self._state.summary())
