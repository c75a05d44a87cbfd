"""Client of the remote job queue (see contracts/remote-queue.openapi.yaml)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from agent_dispatch.clients.bearer import BearerFrom, TokenSource
from agent_dispatch.clients.closing import AsyncClosing
from agent_dispatch.clients.errors import (
    IllegalQueueTransition,
    QueueError,
    QueueProtocolError,
    QueueUnauthorized,
    QueueUnavailable,
    TaskConflict,
    TaskNotFound,
    one_line,
)
from agent_dispatch.clients.json_items import MalformedPage, NotJSON, decode_listing
from agent_dispatch.clients.listing_writes import ListingWrites
from agent_dispatch.clients.retry import DEFAULT_RETRY, RetryPolicy, Sleep, parse_retry_after
from agent_dispatch.clients.wire import QueueTask, StatusChange, summarize_errors
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.domain.storable import storable_text

_RETRYABLE_STATUSES: Final = frozenset({429, 503})
# Failures that prove the request was never processed; any other failure might have been.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


MAX_PAGE_LIMIT = 500  # the contract's largest page (GET /tasks?limit=)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclasses.dataclass(frozen=True, slots=True)
class RejectedItem:
    """A page item that is not a valid QueueTask; task_id only when it has a usable id.

    `reason` is always storable text; `fingerprint` (a hash of the item's raw text) is set
    when there is no usable id, so the same item is recognised on later pages.
    """

    task_id: str | None
    reason: str
    fingerprint: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the item within a run: its id, else its fingerprint."""
        if self.task_id is not None:
            return ("id", self.task_id)
        return ("raw", self.fingerprint or self.reason)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskPage:
    valid: list[QueueTask]
    rejected: list[RejectedItem]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Sent:
    response: httpx.Response
    # An earlier try failed in a way that may have reached the queue (a timeout after the
    # request went out, a dropped connection, a 503): its change may have been applied.
    maybe_applied_before: bool


class RemoteQueueClient(AsyncClosing):
    """Takes tasks from the remote queue and reports their status back."""

    def __init__(
        self,
        base_url: str,
        token: str | TokenSource,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        listing_writes: ListingWrites | None = None,
    ) -> None:
        self._base_url = base_url
        # Counts our writes that take a task off the OPEN listing (clients/listing_writes.py).
        self.listing_writes = listing_writes or ListingWrites()
        self._retry = retry
        self._sleep = sleep
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if isinstance(token, str):
            headers["Authorization"] = f"Bearer {token}"
        else:
            auth = BearerFrom(token, QueueError)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # settings come in as arguments, never from the environment
            headers=headers,
            auth=auth,
        )

    def __repr__(self) -> str:
        return f"RemoteQueueClient(base_url={self._base_url!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def list_tasks(
        self, status: JobStatus | str = JobStatus.OPEN, limit: int = 50, cursor: str | None = None
    ) -> TaskPage:
        """One page of tasks; each item is validated on its own, bad ones are `rejected`."""
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"limit must be within 1..{MAX_PAGE_LIMIT}")
        params = {"status": str(status), "limit": str(limit)}
        if cursor is not None:
            params["cursor"] = cursor
        response = (await self._send("GET", "/tasks", params=params)).response
        if response.status_code != 200:
            raise _unexpected("GET", "/tasks", response)
        try:
            # Item by item: one item the decoder or the database cannot hold is refused
            # alone (contract: items are validated one by one, never the whole page).
            listing = decode_listing(response.content, "tasks")
        except NotJSON:
            raise QueueProtocolError("GET /tasks: the answer is not JSON") from None
        except MalformedPage:
            raise QueueProtocolError("remote queue page has no tasks list") from None
        next_cursor = listing.fields.get("nextCursor")
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise QueueProtocolError("remote queue page has a nextCursor that is not a string")
        page = TaskPage(valid=[], rejected=[], next_cursor=next_cursor or None)
        for item in listing.items:
            reason = item.problem
            if reason is None:
                try:
                    page.valid.append(QueueTask.model_validate(item.value))
                    continue
                except ValidationError as exc:
                    reason = summarize_errors(exc)
            page.rejected.append(
                RejectedItem(item.task_id, storable_text(one_line(reason)), item.fingerprint)
            )
        return page

    async def get_task(self, task_id: str) -> QueueTask:
        path = _task_path(task_id)
        response = (await self._send("GET", path)).response
        if response.status_code == 404:
            raise TaskNotFound(task_id)
        if response.status_code != 200:
            raise _unexpected("GET", path, response)
        try:
            return QueueTask.model_validate(_json_body(response, f"GET {path}"))
        except ValidationError as exc:
            raise QueueProtocolError(f"GET {path}: invalid task: {summarize_errors(exc)}") from None

    async def change_status(
        self,
        task_id: str,
        status: JobStatus | str,
        expected_status: JobStatus | str,
        *,
        result: Any = UNSET,
        agent_id: str | None = None,
        error: str | None = None,
    ) -> QueueTask | None:
        """Move a task to `status` if it is still in `expected_status`.

        Returns the task as the queue answered it, or None when the body was not a valid
        task (or when a retry found our own earlier try had already applied the change).
        """
        fields: dict[str, Any] = {"agent_id": agent_id, "error": error}
        if not isinstance(result, _Unset):
            fields["result"] = result
        change = StatusChange(
            status=JobStatus(status), expected_status=JobStatus(expected_status), **fields
        )
        path = _task_path(task_id)
        # Retrying a PATCH is safe: it is conditional on expectedStatus, so applying it twice
        # is impossible; a second try only meets a 409, handled below.
        leaves_open = change.expected_status is JobStatus.OPEN  # shifts the OPEN listing
        with self.listing_writes.writing() if leaves_open else contextlib.nullcontext():
            sent = await self._send("PATCH", path, body=change.to_wire())
        response = sent.response
        code = response.status_code
        if code == 409:
            current = _current_status(response)
            if sent.maybe_applied_before and current == change.status:
                return None  # our earlier try went through before its answer was lost
            raise TaskConflict(task_id, current)
        if code == 404:
            raise TaskNotFound(task_id)
        if code == 422:
            raise IllegalQueueTransition(task_id, change.expected_status, change.status)
        if not 200 <= code < 300:
            raise _unexpected("PATCH", path, response)
        try:
            return QueueTask.model_validate_json(response.content)
        except ValidationError:
            return None

    async def take(self, task_id: str) -> bool:
        """Claim an OPEN task (OPEN -> DISTRIBUTED); False if another consumer has it."""
        try:
            await self.change_status(task_id, JobStatus.DISTRIBUTED, JobStatus.OPEN)
        except TaskConflict:
            return False
        return True

    async def reject(self, item: RejectedItem) -> bool:
        """Report an invalid task as FAILED with the reason; False if it could not be."""
        if item.task_id is None:
            return False  # nothing to address it by
        try:
            await self.change_status(
                item.task_id, JobStatus.FAILED, JobStatus.OPEN, error=item.reason
            )
        except (TaskConflict, TaskNotFound):
            return False
        return True

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> _Sent:
        """One request, retried on 429/503/timeouts/connection errors per the policy."""
        maybe_applied = False
        for attempt in range(1, self._retry.tries + 1):
            retry_after: float | None = None
            try:
                response = await self._client.request(method, path, params=params, json=body)
            except httpx.TransportError as exc:  # includes every httpx.TimeoutException
                reason = _describe_failure(exc)
                maybe_applied = maybe_applied or not isinstance(exc, _NOT_SENT)
            else:
                code = response.status_code
                if code == 401:
                    raise QueueUnauthorized()
                if code not in _RETRYABLE_STATUSES:
                    return _Sent(response, maybe_applied)
                reason = f"{code} {response.reason_phrase}".strip()
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                # 429 means "not processed"; a 503 may come from a proxy after the queue acted.
                maybe_applied = maybe_applied or code == 503
            if attempt == self._retry.tries:
                raise QueueUnavailable(
                    f"remote queue unavailable after {attempt} attempts: {reason}"
                )
            await self._sleep(self._retry.delay(attempt, retry_after))
        raise AssertionError("unreachable")  # the loop returns or raises


def _task_path(task_id: str) -> str:
    # safe="" so an id with "/" or "?" stays one path segment.
    return f"/tasks/{quote(task_id, safe='')}"


def _json_body(response: httpx.Response, what: str) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        raise QueueProtocolError(f"{what}: the answer is not JSON") from None


def _current_status(response: httpx.Response) -> str | None:
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    current = body.get("currentStatus") if isinstance(body, dict) else None
    return current if isinstance(current, str) else None


def _describe_failure(exc: httpx.TransportError) -> str:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return f"{kind} ({type(exc).__name__})"


def _unexpected(method: str, path: str, response: httpx.Response) -> QueueError:
    return QueueError(f"remote queue answered {response.status_code} to {method} {path}")
