"""HTTP clients of the remote job queue and of the agents (httpx + pydantic)."""

from agent_dispatch.clients.agent import AgentClient, AgentEndpoint, AgentReply, OnAccepted
from agent_dispatch.clients.errors import (
    AgentBlocked,
    AgentCallError,
    AgentConnectionError,
    AgentHTTPError,
    AgentInvalidAnswer,
    AgentReportedFailure,
    AgentTimeout,
    ClientError,
    IllegalQueueTransition,
    QueueError,
    QueueProtocolError,
    QueueUnauthorized,
    QueueUnavailable,
    TaskConflict,
    TaskNotFound,
)
from agent_dispatch.clients.exchange import AddressGuard
from agent_dispatch.clients.listing_writes import ListingWrites
from agent_dispatch.clients.netguard import NetGuard, PinnedBackend, Resolver
from agent_dispatch.clients.queue import UNSET, RejectedItem, RemoteQueueClient, TaskPage
from agent_dispatch.clients.retry import DEFAULT_RETRY, RetryPolicy, Sleep, parse_retry_after
from agent_dispatch.clients.wire import (
    Accepted,
    AgentResult,
    HealthReport,
    JobExecutionData,
    QueueTask,
    StatusChange,
    summarize_errors,
)

__all__ = [
    "DEFAULT_RETRY",
    "UNSET",
    "Accepted",
    "AddressGuard",
    "AgentBlocked",
    "AgentCallError",
    "AgentClient",
    "AgentConnectionError",
    "AgentEndpoint",
    "AgentHTTPError",
    "AgentInvalidAnswer",
    "AgentReply",
    "AgentReportedFailure",
    "AgentResult",
    "AgentTimeout",
    "ClientError",
    "HealthReport",
    "IllegalQueueTransition",
    "JobExecutionData",
    "ListingWrites",
    "NetGuard",
    "OnAccepted",
    "PinnedBackend",
    "QueueError",
    "QueueProtocolError",
    "QueueTask",
    "QueueUnauthorized",
    "QueueUnavailable",
    "RejectedItem",
    "RemoteQueueClient",
    "Resolver",
    "RetryPolicy",
    "Sleep",
    "StatusChange",
    "TaskConflict",
    "TaskNotFound",
    "TaskPage",
    "parse_retry_after",
    "summarize_errors",
]
