"""Job and agent-work state machines: the only legal status moves."""

from __future__ import annotations

import enum


class IllegalTransition(ValueError):
    """A status move that the state machine does not allow."""

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"illegal {kind} transition {current} -> {target}")
        self.kind = kind
        self.current = current
        self.target = target


class JobStatus(enum.StrEnum):
    OPEN = "OPEN"  # stored from the queue, not taken yet
    DISTRIBUTED = "DISTRIBUTED"  # taken on the queue, agents being chosen/assigned
    IN_PROGRESS = "IN_PROGRESS"  # agents are working on it
    COMPLETED = "COMPLETED"  # an agent's result was selected and reported
    CANCELLED = "CANCELLED"  # stopped by an operator or by the queue
    EXPIRED = "EXPIRED"  # its expiresAt passed before it finished
    FAILED = "FAILED"  # every agent failed and retries are spent
    SKIPPED = "SKIPPED"  # a workflow step whose `when` was false (step jobs only)

    @property
    def terminal(self) -> bool:
        return self in JOB_TERMINAL


class AgentRunStatus(enum.StrEnum):
    IDLE = "IDLE"  # not yet part of a distribution (never stored)
    ASSIGNED = "ASSIGNED"  # chosen for a distribution, call not started
    WORKING = "WORKING"  # the call is under way (or accepted, being polled)
    COMPLETED = "COMPLETED"  # answered with a valid COMPLETED result
    FAILED = "FAILED"  # answered FAILED, an error status, or an invalid answer
    CANCELLED = "CANCELLED"  # stopped: lost the race, job cancelled or rescued
    TIMEOUT = "TIMEOUT"  # no final answer before its deadline

    @property
    def terminal(self) -> bool:
        return self in AGENT_TERMINAL


class FailureKind(enum.StrEnum):
    """Why one agent call did not produce a result; drives stats and analytics."""

    TIMEOUT = "timeout"  # no final answer before the deadline
    HTTP_ERROR = "http_error"  # an error status, or retryable statuses until retries ran out
    CONNECTION = "connection"  # could not connect / connection dropped
    INVALID_ANSWER = "invalid_answer"  # non-JSON, wrong shape, too large
    AGENT_FAILED = "agent_failed"  # the agent itself answered FAILED
    BLOCKED = "blocked"  # refused before calling: unsafe address or open circuit
    CANCELLED = "cancelled"  # lost the race or job cancelled: not a failure of the agent

    @property
    def counts_as_failure(self) -> bool:
        """The one spelling of "cancelled or blocked is not the agent's failure"."""
        return self not in NOT_AGENT_FAULT


class DistributionStatus(enum.StrEnum):
    """One dispatch attempt of a job (a distribution record)."""

    RUNNING = "RUNNING"  # agents are being called
    COMPLETED = "COMPLETED"  # an agent's result was selected
    FAILED = "FAILED"  # every agent failed
    CANCELLED = "CANCELLED"  # the job was cancelled while it ran
    EXPIRED = "EXPIRED"  # the job expired while it ran
    ABANDONED = "ABANDONED"  # its worker was lost; the sweep closed it


# Failure kinds that say nothing about the agent's quality (a loser, a refused call).
NOT_AGENT_FAULT = frozenset({FailureKind.CANCELLED, FailureKind.BLOCKED})


JOB_TERMINAL = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.CANCELLED,
        JobStatus.EXPIRED,
        JobStatus.FAILED,
        JobStatus.SKIPPED,
    }
)
AGENT_TERMINAL = frozenset(
    {
        AgentRunStatus.COMPLETED,
        AgentRunStatus.FAILED,
        AgentRunStatus.CANCELLED,
        AgentRunStatus.TIMEOUT,
    }
)

# Taken on the queue and not finished: the statuses a leased worker drives.
JOB_ACTIVE = frozenset({JobStatus.DISTRIBUTED, JobStatus.IN_PROGRESS})
# Agent calls that are not over yet: they hold a slot of the agent's max concurrency.
AGENT_OPEN = frozenset({AgentRunStatus.ASSIGNED, AgentRunStatus.WORKING})

_ENDINGS = {JobStatus.CANCELLED, JobStatus.EXPIRED}
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # OPEN -> FAILED is not allowed: a job only fails after agents worked on it.
    JobStatus.OPEN: frozenset({JobStatus.DISTRIBUTED, *_ENDINGS}),
    JobStatus.DISTRIBUTED: frozenset({JobStatus.IN_PROGRESS, JobStatus.FAILED, *_ENDINGS}),
    JobStatus.IN_PROGRESS: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, *_ENDINGS}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.EXPIRED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.SKIPPED: frozenset(),
}

# Step jobs (the steps of a workflow run) never reach the queue, so two more things are legal
# for them: a step no agent can take fails at once (OPEN -> FAILED: its workflow decides what
# follows), and a step is stored SKIPPED from birth when its `when` is false.
STEP_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    **JOB_TRANSITIONS,
    JobStatus.OPEN: JOB_TRANSITIONS[JobStatus.OPEN] | {JobStatus.FAILED},
}
JOB_BIRTH = frozenset({JobStatus.OPEN})  # statuses a job may be stored in at first
STEP_BIRTH = frozenset({JobStatus.OPEN, JobStatus.SKIPPED})

_AGENT_ENDS = frozenset({AgentRunStatus.FAILED, AgentRunStatus.CANCELLED, AgentRunStatus.TIMEOUT})
AGENT_TRANSITIONS: dict[AgentRunStatus, frozenset[AgentRunStatus]] = {
    AgentRunStatus.IDLE: frozenset({AgentRunStatus.ASSIGNED}),
    # An assigned agent can end before its call starts (job cancelled, circuit open).
    AgentRunStatus.ASSIGNED: frozenset({AgentRunStatus.WORKING, *_AGENT_ENDS}),
    AgentRunStatus.WORKING: frozenset({AgentRunStatus.COMPLETED, *_AGENT_ENDS}),
    AgentRunStatus.COMPLETED: frozenset(),
    AgentRunStatus.FAILED: frozenset(),
    AgentRunStatus.CANCELLED: frozenset(),
    AgentRunStatus.TIMEOUT: frozenset(),
}


def can_move_job(current: JobStatus, target: JobStatus, *, step: bool = False) -> bool:
    return target in (STEP_TRANSITIONS if step else JOB_TRANSITIONS)[current]


def check_job_move(
    current: JobStatus | str, target: JobStatus | str, *, step: bool = False
) -> JobStatus:
    """Return the target status, or raise IllegalTransition (`step`: a workflow's step job)."""
    cur, tgt = JobStatus(current), JobStatus(target)
    if tgt not in (STEP_TRANSITIONS if step else JOB_TRANSITIONS)[cur]:
        raise IllegalTransition("step" if step else "job", cur, tgt)
    return tgt


def check_agent_move(current: AgentRunStatus | str, target: AgentRunStatus | str) -> AgentRunStatus:
    """Return the target status, or raise IllegalTransition."""
    cur, tgt = AgentRunStatus(current), AgentRunStatus(target)
    if tgt not in AGENT_TRANSITIONS[cur]:
        raise IllegalTransition("agent", cur, tgt)
    return tgt


def job_sources(target: JobStatus) -> frozenset[JobStatus]:
    """Statuses from which `target` may be reached (used in conditional updates)."""
    return frozenset(s for s, nxt in JOB_TRANSITIONS.items() if target in nxt)


def agent_sources(target: AgentRunStatus) -> frozenset[AgentRunStatus]:
    return frozenset(s for s, nxt in AGENT_TRANSITIONS.items() if target in nxt)
