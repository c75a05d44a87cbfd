"""Client of A2A agents (Agent2Agent, JSON-RPC binding, protocol 1.0 and 0.3).

Same interface as clients.agent.AgentClient, so dispatch can pick a client by protocol:
`execute` returns an AgentReply or raises an AgentCallError kind, `cancel` is best effort,
`health` reads the agent card. The job goes out as one A2A message, not blocking; the
task it starts is polled with GetTask until it ends. Every request goes through the same
BoundedHttp as http-json calls: whole-call deadline, size cap, SSRF address guard, no
redirects, the retry policy for 429/503/connection errors on the send.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any, ClassVar, Final, TypeVar

import httpx
from a2a.types import a2a_pb2 as pb

from agent_dispatch.clients.a2a_card import AgentCardInfo, read_card
from agent_dispatch.clients.a2a_wire import (
    DIALECTS,
    Dialect,
    RpcAnswer,
    WireError,
    idempotency_key,
    job_request,
    parts_result,
    run_status,
    state_name,
    status_text,
    task_result,
    task_score,
)
from agent_dispatch.clients.agent import AgentEndpoint, AgentReply, OnAccepted, new_exchange
from agent_dispatch.clients.closing import AsyncClosing
from agent_dispatch.clients.errors import (
    AgentCallError,
    AgentHTTPError,
    AgentInvalidAnswer,
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
from agent_dispatch.clients.wire import HealthReport, JobExecutionData
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind

T = TypeVar("T")
FIRST_POLL_INTERVAL: Final = 0.1
MAX_POLL_INTERVAL: Final = 2.0
DEFAULT_CARD_TTL: Final = 300.0


class A2ATaskCanceled(AgentCallError):
    """The agent ended the task as canceled without our asking (AgentRunStatus.CANCELLED)."""

    default_kind: ClassVar[FailureKind] = FailureKind.CANCELLED


class A2ARpcError(AgentHTTPError):
    """The agent answered a JSON-RPC error object (`rpc_code`) instead of a result."""

    def __init__(self, agent: str, method: str, error_code: int, message: str, status: int):
        self.rpc_code = error_code
        why = f": {message}" if message else ""
        super().__init__(
            f"agent {agent} answered JSON-RPC error {error_code} to {method}{why}",
            status_code=status,
        )


class A2AClient(AsyncClosing):
    """Sends jobs to A2A agents, follows their tasks, cancels losers, reads their cards."""

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
        card_ttl: float = DEFAULT_CARD_TTL,
        net_guard: NetGuard | None = None,
    ) -> None:
        """`net_guard`: as for the http-json client (early refusal, pinned connections)."""
        self._retry = retry
        self._sleep = sleep
        self._card_ttl = card_ttl
        self._cards: dict[str, tuple[AgentCardInfo, float]] = {}  # base_url -> card, read at
        self._ids = itertools.count(1)
        self._http = BoundedHttp(
            transport=transport,
            max_response_bytes=max_response_bytes,
            connect_timeout=connect_timeout,
            address_guard=address_guard,
            limits=limits,
            net_guard=net_guard,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # Cards

    async def fetch_card(
        self,
        base_url: str,
        *,
        name: str | None = None,
        token: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a budget, enforced inside with asyncio.timeout_at
    ) -> AgentCardInfo:
        """Read the card at `base_url` (for registration); AgentCallError on any failure.

        A malformed card, or one with no JSON-RPC binding of A2A 1.0/0.3, raises
        AgentCardRefused with a one-line reason. `name` labels messages (default: the host).
        """
        label = name or httpx.URL(base_url).host or "agent"
        endpoint = AgentEndpoint("", label, base_url, token)
        exchange = new_exchange(endpoint, None, loop_time(time.monotonic() + timeout), "agent card")
        async with bounded(exchange):
            info = await read_card(self._http, exchange, base_url)
            self.remember_card(base_url, info)
            return info
        raise AssertionError("unreachable")  # for mypy: `bounded` re-raises what it catches

    def remember_card(self, base_url: str, info: AgentCardInfo) -> None:
        """Use `info` for calls to `base_url` (e.g. as stored at registration) until the TTL."""
        self._cards[base_url] = (info, time.monotonic())

    async def _card(self, endpoint: AgentEndpoint, exchange: Exchange) -> AgentCardInfo:
        known = self._cards.get(endpoint.base_url)
        if known is not None and time.monotonic() - known[1] < self._card_ttl:
            return known[0]
        info = await read_card(self._http, exchange, endpoint.base_url)
        self.remember_card(endpoint.base_url, info)
        return info

    # The AgentClient interface

    async def execute(
        self,
        endpoint: AgentEndpoint,
        data: JobExecutionData,
        *,
        deadline: float,
        on_accepted: OnAccepted | None = None,
    ) -> AgentReply:
        """Run one job on one agent until its task ends; `deadline` is a time.monotonic().

        Raises an AgentCallError subclass when there is no completed result.
        """
        exchange = new_exchange(
            endpoint, idempotency_key(data), loop_time(deadline), "final answer"
        )
        if exchange.remaining() <= 0:
            raise exchange.timeout_error()
        async with bounded(exchange):
            info = await self._card(endpoint, exchange)
            dialect = DIALECTS[info.protocol_version]
            exchange.headers.update(dialect.headers)
            body = dialect.send_body(job_request(data), self._rpc_id())
            answer = await post_with_retries(
                self._http, exchange, info.rpc_url, body, retry=self._retry, sleep=self._sleep
            )
            result = self._result(exchange, answer, dialect.send_method)
            sent = _decode(exchange, dialect.send_result, result)
            if isinstance(sent, pb.Message):  # answered at once, without a task
                return AgentReply(
                    parts_result(list(sent.parts)), None, exchange.attempts, None, 200
                )
            exchange.remote_task_id = sent.id or None
            if run_status(sent) is AgentRunStatus.WORKING:
                if not sent.id:
                    raise AgentInvalidAnswer(f"agent {endpoint.name}: the task has no id")
                if on_accepted is not None:
                    await on_accepted(sent.id)
                sent = await self._follow(exchange, dialect, info.rpc_url, sent.id)
            return _final(exchange, sent)
        raise AssertionError("unreachable")

    async def cancel(
        self,
        endpoint: AgentEndpoint,
        *,
        job_id: str,
        distribution_id: str,
        remote_task_id: str | None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a budget, enforced inside with asyncio.timeout_at
    ) -> bool:
        """CancelTask, best effort: True if the agent confirmed; False otherwise.

        A2A cancels by task id only, so without `remote_task_id` there is nothing to send.
        A refusal (task not cancelable, unknown method, any error) is False, never raised.
        """
        if not remote_task_id:
            return False
        key = f"{distribution_id}:{endpoint.agent_id}"
        exchange = new_exchange(endpoint, key, loop_time(time.monotonic() + timeout), "answer")
        try:
            async with bounded(exchange):
                info = await self._card(endpoint, exchange)
                dialect = DIALECTS[info.protocol_version]
                exchange.headers.update(dialect.headers)
                body = dialect.cancel_body(remote_task_id, self._rpc_id())
                answer = await self._http.request(exchange, "POST", info.rpc_url, body=body)
                result = self._result(exchange, answer, dialect.cancel_method)
                task = _decode(exchange, dialect.task_result, result)
        except Exception:  # a failed cancel must not fail the caller; CancelledError passes
            return False
        # Canceled, or still winding down towards it; a task that ended otherwise was not.
        return run_status(task) in (AgentRunStatus.CANCELLED, AgentRunStatus.WORKING)

    async def health(
        self,
        endpoint: AgentEndpoint,
        *,
        timeout: float = 3.0,  # noqa: ASYNC109 - a budget, enforced inside with asyncio.timeout_at
    ) -> HealthReport:
        """Healthy when the agent card is served and still usable; AgentCallError otherwise.

        Each probe reads the card afresh and refreshes the one used for calls.
        """
        exchange = new_exchange(endpoint, None, loop_time(time.monotonic() + timeout), "agent card")
        async with bounded(exchange):
            info = await read_card(self._http, exchange, endpoint.base_url)
            self.remember_card(endpoint.base_url, info)
            return HealthReport(status="ok")
        raise AssertionError("unreachable")

    # Following a task

    async def _follow(
        self, exchange: Exchange, dialect: Dialect, url: str, task_id: str
    ) -> pb.Task:
        """GetTask until the task leaves submitted/working; busy or dropped polls are retried."""
        wait = FIRST_POLL_INTERVAL
        while True:
            await self._sleep(max(0.0, min(wait, exchange.remaining())))
            wait = min(wait * 2, MAX_POLL_INTERVAL)
            body = dialect.get_body(task_id, self._rpc_id())
            try:
                answer = await self._http.request(exchange, "POST", url, body=body)
            except httpx.TransportError as exc:
                failure = exchange.transport_error(exc)
                if isinstance(failure, AgentTimeout):
                    raise failure from None
                continue  # a dropped poll is not a failed job: poll again later
            if answer.status_code in RETRYABLE_STATUSES:
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
                if retry_after is not None:
                    wait = min(retry_after, self._retry.max_retry_after)
                continue
            task = _decode(
                exchange, dialect.task_result, self._result(exchange, answer, dialect.get_method)
            )
            if run_status(task) is not AgentRunStatus.WORKING:
                return task

    def _result(self, exchange: Exchange, answer: Answer, method: str) -> Any:
        """The JSON-RPC `result`; A2ARpcError for an error object, AgentInvalidAnswer for junk."""
        if answer.status_code != 200:
            raise exchange.status_error(answer.status_code, f"to {method}")
        rpc = exchange.parse(RpcAnswer, answer.body)
        if rpc.error is not None:
            code = answer.status_code
            raise A2ARpcError(exchange.agent, method, rpc.error.code, rpc.error.message, code)
        if rpc.result is None:
            raise AgentInvalidAnswer(f"agent {exchange.agent}: JSON-RPC answer has no result")
        return rpc.result

    def _rpc_id(self) -> str:
        return f"ad-{next(self._ids)}"


def _decode(exchange: Exchange, decode: Callable[[Any], T], result: Any) -> T:
    try:
        return decode(result)
    except WireError as exc:
        raise AgentInvalidAnswer(f"agent {exchange.agent}: {exc}") from None


def _final(exchange: Exchange, task: pb.Task) -> AgentReply:
    """A completed task's reply; every other end becomes the matching AgentCallError."""
    status = run_status(task)
    if status is AgentRunStatus.COMPLETED:
        return AgentReply(task_result(task), task_score(task), exchange.attempts, task.id, 200)
    state, why = state_name(task), status_text(task)
    if status is AgentRunStatus.CANCELLED:
        raise A2ATaskCanceled(
            f"agent {exchange.agent} canceled the task" + (f": {why}" if why else "")
        )
    if status is AgentRunStatus.FAILED:
        # failed/rejected, or stopped to ask for input or auth that dispatch cannot give.
        raise AgentReportedFailure(exchange.agent, f"{state}: {why}" if why else state)
    raise AgentInvalidAnswer(f"agent {exchange.agent}: task in {state}")
