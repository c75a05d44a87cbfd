"""Plain value objects the core reasons about; the database and wire formats map onto them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any, NamedTuple

from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind


class StrategyKind(enum.StrEnum):
    """How the job's result is chosen among the agents' answers (the queue's resultStrategy)."""

    FIRST = "first"  # the first good answer wins
    BEST_SCORE = "best-score"  # wait for the started agents, take the highest score
    QUORUM = "quorum"  # k answers that agree; escalate on disagreement


@dataclasses.dataclass(frozen=True, slots=True)
class ResultStrategy:
    kind: StrategyKind = StrategyKind.FIRST
    quorum: int = 2  # with QUORUM: agreeing answers needed
    max_agents: int | None = None  # with QUORUM: escalation limit (None: the job's limit)

    @property
    def wanted(self) -> int:
        """Good answers the strategy needs before it can decide (what hedging waits for)."""
        return self.quorum if self.kind is StrategyKind.QUORUM else 1

    def label(self) -> str:
        return f"quorum({self.quorum})" if self.kind is StrategyKind.QUORUM else self.kind.value

    def as_dict(self) -> dict[str, Any]:
        """The queue contract's shape: {"type": ..., "quorum": k}."""
        out: dict[str, Any] = {"type": self.kind.value}
        if self.kind is StrategyKind.QUORUM:
            out["quorum"] = self.quorum
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ResultStrategy | None:
        if not data:
            return None
        kind = StrategyKind(data["type"])
        return cls(kind, int(data.get("quorum") or 2))


@dataclasses.dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job asks for, as far as matching and dispatch care."""

    queue_task_id: str
    title: str
    category: str
    tags: tuple[str, ...] = ()
    skill_level: int = 1
    description: str = ""
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    max_agents: int | None = None
    timeout_ms: int | None = None
    expires_at: dt.datetime | None = None
    result_strategy: ResultStrategy | None = None  # the task's own; None: settings decide
    workflow: str | None = None  # a queue task done as this registered workflow's steps
    parent_job_id: str | None = None  # set on a workflow's step job: never on the queue
    step_id: str | None = None

    @property
    def is_step(self) -> bool:
        return self.parent_job_id is not None

    def is_expired(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class AgentStats(NamedTuple):
    """Track record used by ranking; success_rate is derived from the counts.

    A NamedTuple, not a frozen dataclass: immutable all the same, and built for every agent
    of every plan's pool (a frozen dataclass's __init__ costs several times a tuple's).

    recent_success_rate is the time-decayed rate (older results weigh less) that the analytics
    flow refreshes and each finished job nudges; ranking prefers it when known.
    """

    runs: int = 0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0
    wins: int = 0
    cancelled: int = 0
    reputation: float = 0.5
    avg_latency_ms: float | None = None
    recent_success_rate: float | None = None

    @property
    def decided(self) -> int:
        """Runs that ended as success or failure (cancelled losers are neither)."""
        return self.successes + self.failures

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.decided if self.decided else None


class AgentProfile(NamedTuple):
    """A registered agent as matching sees it (a NamedTuple, as AgentStats: one is built for
    every agent of every plan's pool)."""

    id: str
    name: str
    url: str
    categories: tuple[str, ...]
    tags: tuple[str, ...] = ()
    skill_level: int = 1
    max_concurrency: int = 1
    active: bool = True
    healthy: bool | None = None  # None: never probed
    protocol: str = "http-json"
    in_flight: int = 0  # agent calls currently ASSIGNED or WORKING anywhere
    circuit: str = "closed"  # a breaker.CircuitState: closed, open or half-open
    stats: AgentStats = AgentStats()


@dataclasses.dataclass(frozen=True, slots=True)
class AgentOutcome:
    """How one agent call ended."""

    status: AgentRunStatus
    result: Any = None
    error: str | None = None
    failure_kind: FailureKind | None = None
    latency_ms: float | None = None
    score: float | None = None
    attempts: int = 1
    answered_at: float | None = None  # monotonic clock; orders answers that land together

    @property
    def succeeded(self) -> bool:
        return self.status is AgentRunStatus.COMPLETED

    @property
    def judges_agent(self) -> bool:
        """Whether this call says anything about the agent's quality.

        A loser cancelled after another agent won, or a call refused before it was made, is
        neither a success nor a failure of the agent (statistics, breaker and analytics agree).
        """
        if self.status is AgentRunStatus.CANCELLED:
            return False
        return self.failure_kind is None or self.failure_kind.counts_as_failure
