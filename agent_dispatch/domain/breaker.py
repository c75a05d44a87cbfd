"""Per-agent circuit breaker: stop calling an agent after repeated failures, retry later."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.statuses import AgentRunStatus


class CircuitState(enum.StrEnum):
    CLOSED = "closed"  # calls flow
    OPEN = "open"  # calls are refused until open_until
    HALF_OPEN = "half-open"  # past open_until: one trial call at a time decides


@dataclasses.dataclass(frozen=True, slots=True)
class Circuit:
    consecutive_failures: int = 0
    open_until: dt.datetime | None = None

    def state(self, now: dt.datetime) -> CircuitState:
        return circuit_state(self.open_until, now)

    def is_open(self, now: dt.datetime) -> bool:
        return self.state(now) is CircuitState.OPEN


def circuit_state(open_until: dt.datetime | None, now: dt.datetime) -> CircuitState:
    """Closed until a first opening; open while now < open_until, half-open past it. (A
    function too: planning reads it for every agent of every pool, building no Circuit.)"""
    if open_until is None:
        return CircuitState.CLOSED
    return CircuitState.OPEN if now < open_until else CircuitState.HALF_OPEN


def after_outcome(
    circuit: Circuit,
    outcome: AgentOutcome,
    now: dt.datetime,
    *,
    threshold: int,
    reset_seconds: float,
) -> Circuit:
    """The breaker after one finished call; cancelled losers and refusals do not count."""
    if outcome.status is AgentRunStatus.COMPLETED:
        return Circuit()
    if not outcome.judges_agent:
        return circuit
    failures = circuit.consecutive_failures + 1
    if failures >= threshold:
        # Half-open after a failed trial: re-open for another full period.
        return Circuit(failures, now + dt.timedelta(seconds=reset_seconds))
    return Circuit(failures, circuit.open_until)
