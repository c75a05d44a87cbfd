"""Exceptions raised by the remote-queue and agent clients.

ClientError
├── TokenUnavailable            a token kept in a Prefect Secret block could not be read
├── QueueError                  the remote queue did not do what was asked
│   ├── QueueUnauthorized       401: the token was refused; never retried
│   ├── QueueUnavailable        429/503/timeouts/connection errors, retries spent (.reason)
│   ├── QueueProtocolError      a body that breaks the contract (not JSON, no `tasks` list)
│   ├── TaskConflict            409: the task is no longer in expectedStatus (.current_status)
│   ├── TaskNotFound            404: no such task (.task_id)
│   └── IllegalQueueTransition  422: the queue refuses the status change
└── AgentCallError              one agent call produced no result (.kind, .attempts,
    │                           .status_code, .remote_task_id)
    ├── AgentTimeout            FailureKind.TIMEOUT: no final answer before the deadline
    ├── AgentHTTPError          FailureKind.HTTP_ERROR: an error status (or 429/503 until
    │                           retries ran out), including any 3xx: redirects are not followed
    ├── AgentConnectionError    FailureKind.CONNECTION: could not connect / connection dropped
    ├── AgentInvalidAnswer      FailureKind.INVALID_ANSWER: not JSON, wrong shape, too large
    ├── AgentReportedFailure    FailureKind.AGENT_FAILED: the agent answered FAILED (.error)
    └── AgentBlocked            FailureKind.BLOCKED: the address was refused before calling

Messages are one human-readable line and never contain a token or an Authorization
header; agent errors name the agent by id, never by URL (a URL may carry credentials).
"""

from __future__ import annotations

from typing import ClassVar

from agent_dispatch.domain.statuses import FailureKind


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace and cut `text` so it fits in a one-line message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ClientError(Exception):
    """Base of every error raised by this package."""


class TokenUnavailable(ClientError):
    """A token named by reference (a Prefect Secret block) could not be read now.

    The message names the block, never its value."""


class QueueError(ClientError):
    """The remote queue did not do what was asked."""


class QueueUnauthorized(QueueError):
    """The queue refused our token (401). Retrying cannot help."""

    def __init__(self) -> None:
        super().__init__("remote queue rejected the token (401)")


class QueueUnavailable(QueueError):
    """The queue stayed rate-limited, unavailable or unreachable after every retry."""

    def __init__(self, reason: str) -> None:
        self.reason = one_line(reason)
        super().__init__(self.reason)


class QueueProtocolError(QueueError):
    """The queue answered with a body that breaks its contract."""


class TaskConflict(QueueError):
    """409: the task is no longer in the expected status (someone else moved it)."""

    def __init__(self, task_id: str, current_status: str | None) -> None:
        self.task_id = task_id
        self.current_status = current_status
        now = f"it is {current_status}" if current_status else "its status is not known"
        super().__init__(one_line(f"task {task_id!r} changed under us: {now}"))


class TaskNotFound(QueueError):
    """404: the queue has no such task."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(one_line(f"remote queue has no task {task_id!r}"))


class IllegalQueueTransition(QueueError):
    """422: the queue says the status change is not a legal transition."""

    def __init__(self, task_id: str, expected_status: str, status: str) -> None:
        self.task_id = task_id
        self.expected_status = expected_status
        self.status = status
        super().__init__(
            one_line(f"remote queue refused {expected_status} -> {status} for task {task_id!r}")
        )


class AgentCallError(ClientError):
    """One call to an agent ended without a result; `kind` says why."""

    default_kind: ClassVar[FailureKind] = FailureKind.HTTP_ERROR

    def __init__(
        self,
        message: str,
        *,
        attempts: int = 1,
        status_code: int | None = None,
        remote_task_id: str | None = None,
    ) -> None:
        super().__init__(one_line(message))
        self.kind: FailureKind = self.default_kind
        self.attempts = attempts  # POST /execute requests sent (polls are not counted)
        self.status_code = status_code
        # Set once the agent accepted the job: the caller needs it to cancel the work.
        self.remote_task_id = remote_task_id


class AgentTimeout(AgentCallError):
    default_kind = FailureKind.TIMEOUT


class AgentHTTPError(AgentCallError):
    default_kind = FailureKind.HTTP_ERROR


class AgentConnectionError(AgentCallError):
    default_kind = FailureKind.CONNECTION


class AgentInvalidAnswer(AgentCallError):
    default_kind = FailureKind.INVALID_ANSWER


class AgentReportedFailure(AgentCallError):
    """The agent answered FAILED; `error` is its own explanation, unchanged."""

    default_kind = FailureKind.AGENT_FAILED

    def __init__(
        self,
        agent_id: str,
        error: str,
        *,
        attempts: int = 1,
        status_code: int | None = 200,
        remote_task_id: str | None = None,
    ) -> None:
        self.error = error
        why = error or "no error given"
        super().__init__(
            f"agent {agent_id} answered FAILED: {why}",
            attempts=attempts,
            status_code=status_code,
            remote_task_id=remote_task_id,
        )


class AgentBlocked(AgentCallError):
    """Refused before any request: the address is not allowed (or the circuit is open)."""

    default_kind = FailureKind.BLOCKED

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        super().__init__(message, attempts=attempts)
