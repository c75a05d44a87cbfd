"""Result selection: which agent outcome becomes the job's result."""

from __future__ import annotations

import dataclasses

from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.statuses import AgentRunStatus, JobStatus


@dataclasses.dataclass(frozen=True, slots=True)
class JobVerdict:
    """How a distribution ends once the agents are done (or one has won)."""

    status: JobStatus
    winner: str | None = None  # agent id
    error: str | None = None


def is_winner(outcome: AgentOutcome) -> bool:
    """First-completed strategy: any valid COMPLETED answer wins the race."""
    return outcome.status is AgentRunStatus.COMPLETED


def failure_summary(outcomes: dict[str, AgentOutcome]) -> str:
    """One line naming each agent's failure, e.g. 'slow: TIMEOUT (no answer in 2000 ms)'."""
    parts = []
    for name, outcome in sorted(outcomes.items()):
        detail = f" ({outcome.error})" if outcome.error else ""
        parts.append(f"{name}: {outcome.status.value}{detail}")
    return "every agent failed: " + "; ".join(parts) if parts else "no agent was called"


def verdict(outcomes: dict[str, AgentOutcome], names: dict[str, str]) -> JobVerdict:
    """Decide the job's end from finished outcomes keyed by agent id (names: id -> name)."""
    for agent_id, outcome in outcomes.items():
        if is_winner(outcome):
            return JobVerdict(JobStatus.COMPLETED, winner=agent_id)
    by_name = {names.get(aid, aid): o for aid, o in outcomes.items()}
    return JobVerdict(JobStatus.FAILED, error=failure_summary(by_name))
