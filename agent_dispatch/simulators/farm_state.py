"""What the agent farm remembers: per-agent state and the records tests read."""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
from collections import Counter
from typing import Any

from agent_dispatch.simulators.behaviours import Behaviour


@dataclasses.dataclass(frozen=True, slots=True)
class CallRecord:
    """One request to an agent, noted on arrival (before any answer)."""

    agent: str
    method: str
    path: str  # relative to the agent's base URL, e.g. "/execute"
    idempotency_key: str | None
    authorization: bool  # whether an Authorization header was sent
    job_id: str | None
    distribution_id: str | None
    at: float  # time.monotonic()


@dataclasses.dataclass(frozen=True, slots=True)
class CancelRecord:
    agent: str
    distribution_id: str | None
    job_id: str | None
    task_id: str | None  # set for POST /tasks/{taskId}/cancel
    while_open: bool  # the work was still under way: execute request open, or task not final
    status_code: int
    at: float  # time.monotonic()


@dataclasses.dataclass(slots=True)
class AsyncTask:
    """A job an async_poll agent accepted with 202."""

    task_id: str
    job: dict[str, Any]
    polls: int = 0
    cancelled: bool = False
    final: bool = False


@dataclasses.dataclass(slots=True)
class AgentState:
    name: str
    behaviour: Behaviour
    token: str | None = None
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    in_flight: int = 0  # open POST /execute requests, streamed bodies included
    peak: int = 0
    streamed_bytes: int = 0  # body bytes handed to the server by drip and huge answers
    attempts: Counter[str] = dataclasses.field(default_factory=Counter)  # per Idempotency-Key
    open: Counter[str] = dataclasses.field(default_factory=Counter)  # open executes per distId
    cancelled: set[str] = dataclasses.field(default_factory=set)  # distributionIds
    tasks: dict[str, AsyncTask] = dataclasses.field(default_factory=dict)
    task_by_key: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> taskId

    def use(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.rng = random.Random(behaviour.seed)


class FarmState:
    """Everything the farm's endpoints and its public face share; fields change under `lock`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.agents: dict[str, AgentState] = {}
        self.calls: list[CallRecord] = []
        self.cancels: list[CancelRecord] = []
        self.task_numbers = itertools.count(1)
        self.stopping = threading.Event()  # set: every held request ends now

    def summary(self) -> dict[str, Any]:
        """Counts a harness in another process reads from GET /_sim/calls."""
        with self.lock:
            runs = [c for c in self.calls if c.method == "POST" and c.path == "/execute"]
            return {
                "executions": dict(Counter(c.idempotency_key for c in runs if c.idempotency_key)),
                "byAgent": dict(Counter(c.agent for c in runs)),
                "byJob": dict(Counter(c.job_id for c in runs if c.job_id)),
                "cancels": dict(Counter(c.agent for c in self.cancels)),
                "inFlight": {n: a.in_flight for n, a in self.agents.items()},
                "peakInFlight": {n: a.peak for n, a in self.agents.items()},
                "streamedBytes": {n: a.streamed_bytes for n, a in self.agents.items()},
                "calls": len(self.calls),
            }


def job_problem(body: Any, key: str) -> str | None:
    """Why an execute body breaks the agent contract, or None when it does not."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for field in ("jobId", "distributionId", "agentId", "title", "category"):
        if not isinstance(body.get(field), str):
            return f"{field} must be a string"
    if not isinstance(body.get("payload"), dict):
        return "payload must be an object"
    if key != f"{body['distributionId']}:{body['agentId']}":
        return "Idempotency-Key must be <distributionId>:<agentId>"
    return None
