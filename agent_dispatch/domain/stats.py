"""Agent statistics after each job: counts, latency average and reputation."""

from __future__ import annotations

from agent_dispatch.domain.model import AgentOutcome, AgentStats
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind

LATENCY_ALPHA = 0.2  # weight of the newest latency in the moving average
REPUTATION_ALPHA = 0.1  # weight of the newest outcome in the reputation


def apply_outcome(stats: AgentStats, outcome: AgentOutcome, *, won: bool) -> AgentStats:
    """Fold one finished agent call into its agent's statistics.

    An agent cancelled because it lost the race (or because the job was cancelled) is counted
    as a run and as cancelled, never as a failure, and its reputation does not move.
    """
    if outcome.failure_kind is FailureKind.BLOCKED:
        return stats  # refused before any call: not even a run of the agent
    if not outcome.judges_agent:
        return stats._replace(runs=stats.runs + 1, cancelled=stats.cancelled + 1)
    success = outcome.status is AgentRunStatus.COMPLETED
    latency = stats.avg_latency_ms
    if success and outcome.latency_ms is not None:
        latency = (
            outcome.latency_ms
            if latency is None
            else (1 - LATENCY_ALPHA) * latency + LATENCY_ALPHA * outcome.latency_ms
        )
    reputation = (1 - REPUTATION_ALPHA) * stats.reputation + REPUTATION_ALPHA * (
        1.0 if success else 0.0
    )
    recent = stats.recent_success_rate
    if recent is not None:  # between analytics runs, decay it the same way as reputation
        recent = round((1 - REPUTATION_ALPHA) * recent + REPUTATION_ALPHA * float(success), 6)
    return stats._replace(
        runs=stats.runs + 1,
        successes=stats.successes + int(success),
        failures=stats.failures + int(not success),
        timeouts=stats.timeouts + int(outcome.status is AgentRunStatus.TIMEOUT),
        wins=stats.wins + int(won),
        reputation=round(reputation, 6),
        avg_latency_ms=latency,
        recent_success_rate=recent,
    )
