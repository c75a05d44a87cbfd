"""Client of the "http-json" agent protocol (see contracts/agent-http.openapi.yaml)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from agent_dispatch.clients.closing import AsyncClosing
from agent_dispatch.clients.errors import (
    AgentReportedFailure,
    AgentTimeout,
)
from agent_dispatch.clients.exchange import (
    RETRYABLE_STATUSES,
    AddressGuard,
    Answer,
    BoundedHttp,
    Exchange,
    bounded,
    loop_time,
    post_with_retries,
)
from agent_dispatch.clients.netguard import NetGuard
from agent_dispatch.clients.retry import DEFAULT_RETRY, RetryPolicy, Sleep, parse_retry_after
from agent_dispatch.clients.wire import (
    Accepted,
    AgentResult,
    HealthReport,
    JobExecutionData,
)

OnAccepted = Callable[[str], Awaitable[None]]
Model = TypeVar("Model", bound=BaseModel)

DEFAULT_POLL_INTERVAL: Final = 0.5
MAX_POLL_INTERVAL: Final = 5.0
# httpx's own defaults; size them to the dispatch concurrency.
DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20)


@dataclasses.dataclass(frozen=True, slots=True)
class AgentEndpoint:
    """Where and how to reach one agent; the token never shows in its repr."""

    agent_id: str
    name: str
    base_url: str
    token: str | None = dataclasses.field(default=None, repr=False)
    protocol: str = "http-json"  # which client speaks to it (clients/protocols.py)

    def url(self, *segments: str) -> str:
        """`base_url` + segments, each quoted as one path segment."""
        tail = "/".join(quote(s, safe="") for s in segments)
        return f"{self.base_url.rstrip('/')}/{tail}"


@dataclasses.dataclass(frozen=True, slots=True)
class AgentReply:
    """A final COMPLETED answer."""

    result: Any
    score: float | None
    attempts: int  # POST /execute requests sent
    remote_task_id: str | None  # the agent's taskId when it accepted the job for later
    status_code: int


class AgentClient(AsyncClosing):
    """Sends jobs to agents, polls accepted ones, cancels losers and probes health."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_response_bytes: int = 10 * 1024 * 1024,
        connect_timeout: float = 5.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        address_guard: AddressGuard | None = None,
        limits: httpx.Limits | None = None,
        net_guard: NetGuard | None = None,
    ) -> None:
        """`net_guard` refuses non-public agents early and pins every connection to an
        address it checked; an injected `transport` (tests) keeps only the early refusal."""
        self._retry = retry
        self._sleep = sleep
        self._http = BoundedHttp(
            transport=transport,
            max_response_bytes=max_response_bytes,
            connect_timeout=connect_timeout,
            address_guard=address_guard,
            limits=limits or DEFAULT_LIMITS,
            net_guard=net_guard,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def execute(
        self,
        endpoint: AgentEndpoint,
        data: JobExecutionData,
        *,
        deadline: float,
        on_accepted: OnAccepted | None = None,
    ) -> AgentReply:
        """Run one job on one agent until a final answer; `deadline` is a time.monotonic().

        Raises an AgentCallError subclass when there is no COMPLETED result.
        """
        key = f"{data.distribution_id}:{data.agent_id}"
        exchange = new_exchange(endpoint, key, loop_time(deadline), "final answer")
        if exchange.remaining() <= 0:
            raise exchange.timeout_error()
        async with bounded(exchange):
            return await self._execute(endpoint, exchange, data.to_wire(), on_accepted)
        raise AssertionError("unreachable")  # for mypy: `bounded` re-raises what it catches

    async def cancel(
        self,
        endpoint: AgentEndpoint,
        *,
        job_id: str,
        distribution_id: str,
        remote_task_id: str | None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a budget, enforced inside with asyncio.timeout_at
    ) -> bool:
        """Best effort: True if the agent confirmed; False otherwise (404/405 included)."""
        key = f"{distribution_id}:{endpoint.agent_id}"
        exchange = new_exchange(endpoint, key, loop_time(time.monotonic() + timeout), "answer")
        if remote_task_id:
            url, body = endpoint.url("tasks", remote_task_id, "cancel"), None
        else:
            url, body = endpoint.url("cancel"), {"jobId": job_id, "distributionId": distribution_id}
        try:
            async with bounded(exchange):
                answer = await self._http.request(exchange, "POST", url, body=body, read_body=False)
        except Exception:  # a failed cancel must not fail the caller; CancelledError passes
            return False
        return 200 <= answer.status_code < 300

    async def health(
        self,
        endpoint: AgentEndpoint,
        *,
        timeout: float = 3.0,  # noqa: ASYNC109 - a budget, enforced inside with asyncio.timeout_at
    ) -> HealthReport:
        """Probe GET /health; any non-200, invalid body or timeout raises AgentCallError."""
        deadline = loop_time(time.monotonic() + timeout)
        exchange = new_exchange(endpoint, None, deadline, "health report")
        async with bounded(exchange):
            try:
                url = endpoint.url("health")
                answer = await self._http.request(exchange, "GET", url, count=True)
            except httpx.TransportError as exc:
                raise exchange.transport_error(exc) from None
            if answer.status_code != 200:
                raise exchange.status_error(answer.status_code, "to /health")
            return exchange.parse(HealthReport, answer.body)
        raise AssertionError("unreachable")

    async def _execute(
        self,
        endpoint: AgentEndpoint,
        exchange: Exchange,
        body: dict[str, Any],
        on_accepted: OnAccepted | None,
    ) -> AgentReply:
        """POST /execute (retried as `post_with_retries` says), then settle the answer."""
        url = endpoint.url("execute")
        answer = await post_with_retries(
            self._http, exchange, url, body, retry=self._retry, sleep=self._sleep
        )
        return await self._settle(endpoint, exchange, answer, on_accepted)

    async def _settle(
        self,
        endpoint: AgentEndpoint,
        exchange: Exchange,
        answer: Answer,
        on_accepted: OnAccepted | None,
    ) -> AgentReply:
        """Turn a non-retryable /execute answer into a reply, a poll loop or an error."""
        code = answer.status_code
        if code == 200:
            result = exchange.parse(AgentResult, answer.body)
            if result.status != "WORKING":
                return _final(exchange, result, code)
            # A WORKING answer with 200 is only usable if it says where to poll.
        elif code != 202:
            raise exchange.status_error(code, "to /execute")
        accepted = exchange.parse(Accepted, answer.body)
        exchange.remote_task_id = accepted.task_id
        if on_accepted is not None:
            await on_accepted(accepted.task_id)
        return await self._poll(endpoint, exchange, accepted)

    async def _poll(
        self, endpoint: AgentEndpoint, exchange: Exchange, accepted: Accepted
    ) -> AgentReply:
        """GET /tasks/{taskId} until a final answer; busy or dropped polls are tried again."""
        url = endpoint.url("tasks", accepted.task_id)
        interval = DEFAULT_POLL_INTERVAL
        if accepted.poll_after_ms is not None:
            interval = min(accepted.poll_after_ms / 1000, MAX_POLL_INTERVAL)
        wait = interval
        while True:
            await self._sleep(max(0.0, min(wait, exchange.remaining())))
            wait = interval
            try:
                answer = await self._http.request(exchange, "GET", url)
            except httpx.TransportError as exc:
                failure = exchange.transport_error(exc)
                if isinstance(failure, AgentTimeout):
                    raise failure from None
                continue  # a dropped poll is not a failed job: poll again later
            code = answer.status_code
            if code in RETRYABLE_STATUSES:
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
                if retry_after is not None:
                    wait = min(retry_after, self._retry.max_retry_after)
                continue
            if code != 200:
                raise exchange.status_error(code, "to a poll")
            result = exchange.parse(AgentResult, answer.body)
            if result.status != "WORKING":
                return _final(exchange, result, code)


def new_exchange(
    endpoint: AgentEndpoint, idempotency_key: str | None, loop_deadline: float, awaited: str
) -> Exchange:
    """One call's Exchange: Idempotency-Key and bearer token headers (also used by clients.a2a)."""
    headers = {}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if endpoint.token:
        headers["Authorization"] = f"Bearer {endpoint.token}"
    return Exchange(endpoint.name, headers, loop_deadline, awaited)


def _final(exchange: Exchange, result: AgentResult, code: int) -> AgentReply:
    if result.status == "FAILED":
        raise AgentReportedFailure(exchange.agent, result.error or "", status_code=code)
    return AgentReply(result.result, result.score, exchange.attempts, exchange.remote_task_id, code)
