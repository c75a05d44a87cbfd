"""Ready-made worlds of agents and tasks: the one `agent-dispatch demo` shows."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.behaviours import Behaviour, behaviour
from agent_dispatch.simulators.queue import SimulatedQueue
from agent_dispatch.simulators.queue_store import utc_iso


@dataclasses.dataclass(frozen=True, slots=True)
class AgentSpec:
    """An agent as it should be registered with agent-dispatch; its URL comes from the farm."""

    name: str
    behaviour: Behaviour
    categories: tuple[str, ...]
    tags: tuple[str, ...] = ()
    skill_level: int = 1
    max_concurrency: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    farm: AgentFarm
    queue: SimulatedQueue
    agents: tuple[AgentSpec, ...]
    tasks: tuple[dict[str, Any], ...]  # as seeded, the invalid item included


_DEMO_AGENTS = (
    AgentSpec(
        name="fast-a",
        behaviour=behaviour("fast", delay=0.1, score=0.8),
        categories=("summarize", "translate"),
        tags=("en", "fr", "de"),
        skill_level=3,
        max_concurrency=2,
    ),
    AgentSpec(
        name="fast-b",
        behaviour=behaviour("fast", delay=0.3, score=0.95),
        categories=("summarize", "code"),
        tags=("en", "python"),
        skill_level=4,
        max_concurrency=2,
    ),
    AgentSpec(
        name="slow",
        behaviour=behaviour("slow", delay=3.0),
        categories=("summarize", "translate"),
        tags=("en", "fr", "de"),
        skill_level=5,
    ),
    AgentSpec(
        name="failing",
        behaviour=behaviour("failing"),
        categories=("code",),
        tags=("python",),
        skill_level=2,
    ),
    AgentSpec(
        name="hanging",
        behaviour=behaviour("hanging"),
        categories=("translate",),
        tags=("fr", "de"),
        skill_level=2,
    ),
    AgentSpec(
        name="async-poll",
        behaviour=behaviour("async_poll", times=2, poll_after_ms=200),
        categories=("summarize", "code"),
        tags=("en", "python"),
        skill_level=3,
        max_concurrency=2,
    ),
)

_DEMO_TASKS: tuple[dict[str, Any], ...] = (
    {"title": "Summarise the release notes", "category": "summarize", "tags": ["en"],
     "payload": {"text": "v2.0 adds cursor paging."}},
    {"title": "Translate the greeting to French", "category": "translate", "tags": ["fr"],
     "skillLevel": 2, "payload": {"text": "Good morning"}},
    {"title": "Fix the failing unit test", "category": "code", "tags": ["python"],
     "skillLevel": 2, "payload": {"test": "test_parse_empty"}},
    {"title": "Summarise the incident report", "category": "summarize", "tags": ["en"],
     "skillLevel": 4, "payload": {"report": "INC-42"}},
    {"title": "Refactor the parser", "category": "code", "tags": ["python"],
     "skillLevel": 3, "maxAgents": 2, "payload": {"module": "parser.py"}},
    {"title": "Translate the manual", "category": "translate",
     "payload": {"text": "Press the red button.", "to": "de"}},
    {"title": "Review the contract", "category": "legal", "tags": ["nda"]},  # nobody serves legal
)  # fmt: skip


def demo_scenario(token: str | None = "demo-token", now: dt.datetime | None = None) -> Scenario:
    """Six agents and nine tasks in three categories.

    Most tasks suit several agents; one task has expired, one is in a category no agent
    serves, and one item breaks the queue contract (no title, skillLevel 9).
    """
    now = now if now is not None else dt.datetime.now(dt.UTC)
    farm = AgentFarm({spec.name: spec.behaviour for spec in _DEMO_AGENTS})
    queue = SimulatedQueue(token)
    # A short per-agent limit, so the demo does not wait long on the hanging agent.
    limit = {"timeoutMs": 5000}
    seeded = [queue.add_task(**task, **limit) for task in _DEMO_TASKS]
    expired = now - dt.timedelta(minutes=5)
    seeded.append(
        queue.add_task(
            title="Summarise last year's minutes", category="summarize", expiresAt=expired, **limit
        )
    )
    # Breaks QueueTask: no title, skillLevel out of range.
    bad = {"id": "task-bad-1", "category": "code", "skillLevel": 9, "status": "OPEN"}
    seeded.append(queue.add_raw({**bad, "createdAt": utc_iso()}))
    return Scenario(farm, queue, _DEMO_AGENTS, tuple(seeded))
