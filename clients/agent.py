"""Client of the "http-json" agent protocol (see contracts/agent-http.openapi.yaml)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from clients.errors import (
    AgentCallError,
    AgentConnectionError,
    AgentHTTPError,
    AgentInvalidAnswer,
    AgentReportedFailure,
    AgentTimeout,
)
from clients.retry import DEFAULT_RETRY, RetryPolicy, Sleep, parse_retry_after
from clients.wire import Accepted, AgentResult, HealthReport, JobExecutionData, summarize_errors

AddressGuard = Callable[[str], Awaitable[None]]
OnAccepted = Callable[[str], Awaitable[None]]
Model = TypeVar("Model", bound=BaseModel)

_RETRYABLE_STATUSES: Final = frozenset({429, 503})
DEFAULT_POLL_INTERVAL: Final = 0.5
MAX_POLL_INTERVAL: Final = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class AgentEndpoint:
    """Where and how to reach one agent; the token never shows in its repr."""

    agent_id: str
    name: str
    base_url: str
    token: str | None = dataclasses.field(default=None, repr=False)

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
    remote_task_id: str | None  # the agent's taskId when it answered 202
    status_code: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Answer:
    status_code: int
    headers: httpx.Headers
    body: bytes


@dataclasses.dataclass(slots=True)
class _Call:
    """State of one bounded exchange with an agent (execute, cancel or health)."""

    endpoint: AgentEndpoint
    headers: dict[str, str]
    loop_deadline: float  # on the event loop's clock
    awaited: str  # what we wait for, for the timeout message
    attempts: int = 0
    remote_task_id: str | None = None

    def remaining(self) -> float:
        return self.loop_deadline - asyncio.get_running_loop().time()

    def timeout_error(self) -> AgentTimeout:
        return AgentTimeout(
            f"agent {self.endpoint.agent_id} gave no {self.awaited} in time",
            attempts=self.attempts,
            remote_task_id=self.remote_task_id,
        )

    def transport_error(self, exc: httpx.TransportError) -> AgentCallError:
        # Read/write/pool timeouts are set to the time left, so they mean the deadline; a
        # connect timeout with time left is a connection failure, retryable like the others.
        if isinstance(exc, httpx.TimeoutException) and (
            not isinstance(exc, httpx.ConnectTimeout) or self.remaining() <= 0
        ):
            return self.timeout_error()
        what = type(exc).__name__
        return AgentConnectionError(f"agent {self.endpoint.agent_id} unreachable ({what})")


@contextlib.asynccontextmanager
async def _bounded(call: _Call) -> AsyncIterator[None]:
    """Bound a call by its deadline and stamp attempts/remote_task_id on its errors."""
    try:
        # timeout_at, not httpx timeouts alone: those are per chunk, a slow drip beats them.
        async with asyncio.timeout_at(call.loop_deadline) as scope:
            yield
    except TimeoutError:
        if not scope.expired():
            raise
        timeout = call.timeout_error()
        _stamp(timeout, call)
        raise timeout from None
    except AgentCallError as exc:
        _stamp(exc, call)
        raise


def _stamp(exc: AgentCallError, call: _Call) -> None:
    exc.attempts = call.attempts
    exc.remote_task_id = exc.remote_task_id or call.remote_task_id


class AgentClient:
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
    ) -> None:
        self._max_bytes = max_response_bytes
        self._connect_timeout = connect_timeout
        self._retry = retry
        self._sleep = sleep
        self._address_guard = address_guard
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,  # a redirect could lead past the address guard
            trust_env=False,  # no proxies or settings from the environment
            # httpx's own defaults unless told otherwise; size them to the dispatch concurrency.
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
            # Agents that compress anyway are still capped, after decoding.
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

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
        call = _Call(endpoint, _headers(endpoint, key), _loop_time(deadline), "final answer")
        if call.remaining() <= 0:
            raise call.timeout_error()
        async with _bounded(call):
            return await self._execute(call, data.to_wire(), on_accepted)
        raise AssertionError("unreachable")  # for mypy: _bounded re-raises whatever it catches

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
        call = _Call(endpoint, _headers(endpoint, key), _loop_time(time.monotonic() + timeout), "")
        if remote_task_id:
            url, body = endpoint.url("tasks", remote_task_id, "cancel"), None
        else:
            url, body = endpoint.url("cancel"), {"jobId": job_id, "distributionId": distribution_id}
        try:
            async with _bounded(call):
                answer = await self._request(call, "POST", url, body=body, read_body=False)
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
        deadline = _loop_time(time.monotonic() + timeout)
        call = _Call(endpoint, _headers(endpoint, None), deadline, "health report")
        async with _bounded(call):
            try:
                answer = await self._request(call, "GET", endpoint.url("health"), count=True)
            except httpx.TransportError as exc:
                raise call.transport_error(exc) from None
            if answer.status_code != 200:
                raise _status_error(call, answer.status_code, "to /health")
            return _parse(call, HealthReport, answer.body)
        raise AssertionError("unreachable")

    async def _execute(
        self, call: _Call, body: dict[str, Any], on_accepted: OnAccepted | None
    ) -> AgentReply:
        url = call.endpoint.url("execute")
        agent = call.endpoint.agent_id
        for attempt in range(1, self._retry.tries + 1):
            retry_after: float | None = None
            try:
                answer = await self._request(call, "POST", url, body=body, count=True)
            except httpx.TransportError as exc:
                failure = call.transport_error(exc)
                if isinstance(failure, AgentTimeout):
                    raise failure from None
            else:
                code = answer.status_code
                if code not in _RETRYABLE_STATUSES:
                    return await self._settle(call, answer, on_accepted)
                failure = AgentHTTPError(
                    f"agent {agent} answered {code} after {attempt} attempts", status_code=code
                )
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            if attempt == self._retry.tries:
                raise failure
            delay = self._retry.delay(attempt, retry_after)
            if delay >= call.remaining():
                raise failure  # waiting for the retry would pass the deadline
            await self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _settle(
        self, call: _Call, answer: _Answer, on_accepted: OnAccepted | None
    ) -> AgentReply:
        """Turn a non-retryable /execute answer into a reply, a poll loop or an error."""
        code = answer.status_code
        if code == 200:
            result = _parse(call, AgentResult, answer.body)
            if result.status != "WORKING":
                return _final(call, result, code)
            # A WORKING answer with 200 is only usable if it says where to poll.
            return await self._poll(call, _parse(call, Accepted, answer.body), on_accepted)
        if code == 202:
            return await self._poll(call, _parse(call, Accepted, answer.body), on_accepted)
        raise _status_error(call, code, "to /execute")

    async def _poll(
        self, call: _Call, accepted: Accepted, on_accepted: OnAccepted | None
    ) -> AgentReply:
        call.remote_task_id = accepted.task_id
        if on_accepted is not None:
            await on_accepted(accepted.task_id)
        url = call.endpoint.url("tasks", accepted.task_id)
        interval = DEFAULT_POLL_INTERVAL
        if accepted.poll_after_ms is not None:
            interval = min(accepted.poll_after_ms / 1000, MAX_POLL_INTERVAL)
        wait = interval
        while True:
            await self._sleep(max(0.0, min(wait, call.remaining())))
            wait = interval
            try:
                answer = await self._request(call, "GET", url)
            except httpx.TransportError as exc:
                failure = call.transport_error(exc)
                if isinstance(failure, AgentTimeout):
                    raise failure from None
                continue  # a dropped poll is not a failed job: poll again later
            code = answer.status_code
            if code in _RETRYABLE_STATUSES:
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
                if retry_after is not None:
                    wait = min(retry_after, self._retry.max_retry_after)
                continue
            if code != 200:
                raise _status_error(call, code, "to a poll")
            result = _parse(call, AgentResult, answer.body)
            if result.status != "WORKING":
                return _final(call, result, code)

    async def _request(
        self,
        call: _Call,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        read_body: bool = True,
        count: bool = False,
    ) -> _Answer:
        """One request, guarded; the body of a 2xx answer is read up to the size cap."""
        if self._address_guard is not None:
            await self._address_guard(url)
        remaining = call.remaining()
        if remaining <= 0:
            raise call.timeout_error()
        timeout = httpx.Timeout(remaining, connect=min(self._connect_timeout, remaining))
        if count:
            call.attempts += 1
        async with self._client.stream(
            method, url, json=body, headers=call.headers, timeout=timeout
        ) as response:
            content = b""
            if read_body and response.is_success:
                content = await self._read_capped(call, response)
            return _Answer(response.status_code, response.headers, content)

    async def _read_capped(self, call: _Call, response: httpx.Response) -> bytes:
        # Raising leaves the `stream` block, which closes the connection: the rest of an
        # oversized answer is never read, so memory stays bounded by the cap.
        agent, code, cap = call.endpoint.agent_id, response.status_code, self._max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise AgentInvalidAnswer(
                f"agent {agent}: answer larger than {cap} bytes", status_code=code
            )
        content = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                if len(content) + len(chunk) > cap:
                    raise AgentInvalidAnswer(
                        f"agent {agent}: answer larger than {cap} bytes", status_code=code
                    )
                content += chunk
        except httpx.DecodingError:
            raise AgentInvalidAnswer(
                f"agent {agent}: answer could not be decoded", status_code=code
            ) from None
        return bytes(content)


def _loop_time(monotonic_deadline: float) -> float:
    # CPython's loop.time() is time.monotonic(); converting keeps us right if a loop differs.
    return asyncio.get_running_loop().time() + (monotonic_deadline - time.monotonic())


def _headers(endpoint: AgentEndpoint, idempotency_key: str | None) -> dict[str, str]:
    headers = {}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if endpoint.token:
        headers["Authorization"] = f"Bearer {endpoint.token}"
    return headers


def _parse(call: _Call, model: type[Model], body: bytes) -> Model:
    agent = call.endpoint.agent_id
    try:
        raw = json.loads(body)
    except ValueError:
        raise AgentInvalidAnswer(f"agent {agent}: answer is not JSON") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        why = summarize_errors(exc)
        raise AgentInvalidAnswer(f"agent {agent}: answer has the wrong shape: {why}") from None


def _final(call: _Call, result: AgentResult, code: int) -> AgentReply:
    if result.status == "FAILED":
        raise AgentReportedFailure(call.endpoint.agent_id, result.error or "", status_code=code)
    return AgentReply(result.result, result.score, call.attempts, call.remote_task_id, code)


def _status_error(call: _Call, code: int, where: str) -> AgentHTTPError:
    agent = call.endpoint.agent_id
    if 300 <= code < 400:
        return AgentHTTPError(
            f"agent {agent} answered {code} {where}: redirects are not followed", status_code=code
        )
    return AgentHTTPError(f"agent {agent} answered {code} {where}", status_code=code)
