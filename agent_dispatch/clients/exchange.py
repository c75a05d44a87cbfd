"""Deadline-bounded, size-capped HTTP exchanges with an agent (internal to AgentClient)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from agent_dispatch.clients.errors import (
    AgentCallError,
    AgentConnectionError,
    AgentHTTPError,
    AgentInvalidAnswer,
    AgentTimeout,
)
from agent_dispatch.clients.netguard import NetGuard
from agent_dispatch.clients.retry import RetryPolicy, Sleep, parse_retry_after
from agent_dispatch.clients.wire import summarize_errors
from agent_dispatch.domain.storable import MAX_DEPTH, json_problem

AddressGuard = Callable[[str], Awaitable[None]]
Model = TypeVar("Model", bound=BaseModel)

RETRYABLE_STATUSES: Final = frozenset({429, 503})


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    headers: httpx.Headers
    body: bytes  # read only for 2xx answers


@dataclasses.dataclass(slots=True)
class Exchange:
    """State of one bounded call to an agent: execute (with retries and polls), cancel, health."""

    agent: str  # the agent's name, for messages
    headers: dict[str, str]
    loop_deadline: float  # on the event loop's clock
    awaited: str  # what we wait for, for the timeout message
    attempts: int = 0  # POST /execute requests sent
    remote_task_id: str | None = None

    def remaining(self) -> float:
        return self.loop_deadline - asyncio.get_running_loop().time()

    def timeout_error(self) -> AgentTimeout:
        return AgentTimeout(
            f"agent {self.agent} gave no {self.awaited} in time",
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
        return AgentConnectionError(f"agent {self.agent} unreachable ({type(exc).__name__})")

    def parse(self, model: type[Model], body: bytes) -> Model:
        """The answer as `model`, or AgentInvalidAnswer (that agent fails, the job goes on).

        Results, errors and task ids of answers are stored and sent on to the queue, so every
        member of an answer is held to the storability rule of domain/storable.py (no NUL, no
        lone surrogate, finite numbers, nested at most MAX_DEPTH levels).
        """
        try:
            raw = json.loads(body)
        except ValueError:
            raise AgentInvalidAnswer(f"agent {self.agent}: answer is not JSON") from None
        except RecursionError:
            raise AgentInvalidAnswer(f"agent {self.agent}: answer nested too deep") from None
        # One level for the answer object itself, MAX_DEPTH for each of its members.
        if (problem := json_problem(raw, "answer", max_depth=MAX_DEPTH + 1)) is not None:
            raise AgentInvalidAnswer(f"agent {self.agent}: {problem}")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            why = summarize_errors(exc)
            raise AgentInvalidAnswer(
                f"agent {self.agent}: answer has the wrong shape: {why}"
            ) from None

    def status_error(self, code: int, where: str) -> AgentHTTPError:
        why = ": redirects are not followed" if 300 <= code < 400 else ""
        return AgentHTTPError(f"agent {self.agent} answered {code} {where}{why}", status_code=code)


def loop_time(monotonic_deadline: float) -> float:
    """A time.monotonic() deadline on the running loop's clock."""
    # CPython's loop.time() is time.monotonic(); converting keeps us right if a loop differs.
    return asyncio.get_running_loop().time() + (monotonic_deadline - time.monotonic())


@contextlib.asynccontextmanager
async def bounded(exchange: Exchange) -> AsyncIterator[None]:
    """Stop the block at the deadline (AgentTimeout); stamp attempts/remote_task_id on errors."""
    try:
        # timeout_at, not httpx timeouts alone: those are per chunk, a slow drip beats them.
        async with asyncio.timeout_at(exchange.loop_deadline) as scope:
            yield
    except TimeoutError:
        if not scope.expired():
            raise
        raise exchange.timeout_error() from None
    except AgentCallError as exc:
        exc.attempts = exchange.attempts
        exc.remote_task_id = exc.remote_task_id or exchange.remote_task_id
        raise


class BoundedHttp:
    """An httpx client that never follows redirects and never reads past a size cap."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None,
        max_response_bytes: int,
        connect_timeout: float,
        address_guard: AddressGuard | None,
        limits: httpx.Limits | None,
        net_guard: NetGuard | None = None,
    ) -> None:
        """`net_guard` refuses non-public agents early and pins every connection to an
        address it checked; an injected `transport` (tests) keeps only the early refusal."""
        # httpx's own defaults unless told otherwise; size them to the dispatch concurrency.
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        if net_guard is not None:
            address_guard = address_guard or net_guard.check
            if transport is None:
                # httpx ignores the client's limits once it is given a transport: set them here.
                transport = net_guard.transport(limits=limits)
        self._max_bytes = max_response_bytes
        self._connect_timeout = connect_timeout
        self._address_guard = address_guard
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,  # a redirect could lead past the address guard
            trust_env=False,  # no proxies or settings from the environment
            limits=limits,
            # Agents that compress anyway are still capped, after decoding.
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        exchange: Exchange,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        read_body: bool = True,
        count: bool = False,
    ) -> Answer:
        """One guarded request; httpx.TransportError is left to the caller to classify."""
        if not _usable_url(url):
            # Retrying cannot mend a registration: fail now, without calling the guard.
            raise AgentConnectionError(f"agent {exchange.agent} has an unusable URL")
        if self._address_guard is not None:
            await self._address_guard(url)
        remaining = exchange.remaining()
        if remaining <= 0:
            raise exchange.timeout_error()
        timeout = httpx.Timeout(remaining, connect=min(self._connect_timeout, remaining))
        if count:
            exchange.attempts += 1
        async with self._client.stream(
            method, url, json=body, headers=exchange.headers, timeout=timeout
        ) as response:
            content = b""
            if read_body and response.is_success:
                content = await self._read_capped(exchange.agent, response)
            return Answer(response.status_code, response.headers, content)

    async def _read_capped(self, agent_id: str, response: httpx.Response) -> bytes:
        # Raising leaves the `stream` block, which closes the connection: the rest of an
        # oversized answer is never read, so memory stays bounded by the cap.
        code, cap = response.status_code, self._max_bytes
        too_large = f"agent {agent_id}: answer larger than {cap} bytes"
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise AgentInvalidAnswer(too_large, status_code=code)
        content = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                if len(content) + len(chunk) > cap:
                    raise AgentInvalidAnswer(too_large, status_code=code)
                content += chunk
        except httpx.DecodingError:
            raise AgentInvalidAnswer(
                f"agent {agent_id}: answer could not be decoded", status_code=code
            ) from None
        return bytes(content)


def _usable_url(url: str) -> bool:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


async def post_with_retries(
    http: BoundedHttp,
    exchange: Exchange,
    url: str,
    body: dict[str, Any],
    *,
    retry: RetryPolicy,
    sleep: Sleep,
) -> Answer:
    """POST the job, retrying 429/503/connection errors while the deadline allows.

    Returns the first answer that is not 429/503; raises the last failure otherwise.
    Each POST counts as one attempt.
    """
    for attempt in range(1, retry.tries + 1):
        retry_after: float | None = None
        try:
            answer = await http.request(exchange, "POST", url, body=body, count=True)
        except httpx.TransportError as exc:
            failure = exchange.transport_error(exc)
            if isinstance(failure, AgentTimeout):
                raise failure from None
        else:
            code = answer.status_code
            if code not in RETRYABLE_STATUSES:
                return answer
            failure = AgentHTTPError(
                f"agent {exchange.agent} answered {code} after {attempt} attempts",
                status_code=code,
            )
            retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if attempt == retry.tries:
            raise failure
        delay = retry.delay(attempt, retry_after)
        if delay >= exchange.remaining():
            raise failure  # waiting for the retry would pass the deadline
        await sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises
