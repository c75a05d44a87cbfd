"""Every job and agent status change of a dispatch run is a Prefect event, linked to its job,
agent, task run and flow run (the live status feed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from prefect.events.schemas.events import Event

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.bootstrap import prefect_events as events
from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.flow_events import related

pytestmark = [pytest.mark.flow]


@pytest.fixture
def recorded(recorded: Callable[[], list[Event]]) -> Callable[[], list[Event]]:
    """Only agent-dispatch's own events, of what the flow emitted (tests/flows/conftest.py)."""
    return lambda: [e for e in recorded() if e.event.startswith("agent-dispatch.")]


async def test_a_race_emits_job_and_agent_events_linked_to_the_run(
    rt: Runtime,
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    recorded: Callable[[], list[Event]],
) -> None:
    ids = {
        "fast": add_agent("fast", "fast:delay=0.2"),
        "slow": add_agent("slow", "slow:delay=20"),
        "broken": add_agent("broken", "failing"),
    }
    task = queue.add_task(title="Summarise", category="general")

    summary = await dispatch_flow(DispatchParams())

    job_id = summary.jobs[0].job_id
    assert summary.jobs[0].outcome == "COMPLETED" and job_id
    seen = recorded()
    job_resource = f"agent-dispatch.job.{job_id}"
    job_events = [e for e in seen if e.resource.id == job_resource]
    assert [e.event for e in job_events] == [
        "agent-dispatch.job.distributed",
        "agent-dispatch.job.in_progress",
        "agent-dispatch.job.completed",
    ]
    for e in job_events:
        assert e.resource["prefect.resource.name"] == task["id"]
    assert related(job_events[-1], "agent") == [f"agent-dispatch.agent.{ids['fast']}"]

    by_agent: dict[str, list[str]] = {}
    for e in seen:
        if e.event.startswith("agent-dispatch.agent."):
            by_agent.setdefault(e.resource["prefect.resource.name"], []).append(
                e.event.rsplit(".", 1)[1]
            )
            assert (
                e.resource.id == f"agent-dispatch.agent.{ids[e.resource['prefect.resource.name']]}"
            )
            assert related(e, "job") == [job_resource]
            # Inside an agent's call-agent task run: WORKING and how the call ended. ASSIGNED
            # (the take) and a stopped loser's CANCELLED (the finish) come from the job's
            # steps, which run in the flow run itself (DISPATCH_MODE=traced).
            in_call = e.event.rsplit(".", 1)[1] in ("working", "completed", "failed")
            assert len(related(e, "task-run")) == (1 if in_call else 0), e.event
    assert by_agent == {
        "fast": ["assigned", "working", "completed"],
        "slow": ["assigned", "working", "cancelled"],
        "broken": ["assigned", "working", "failed"],
    }
    flow_runs = {tuple(related(e, "flow-run")) for e in seen}
    assert len(flow_runs) == 1 and len(next(iter(flow_runs))) == 1, flow_runs
    failed = next(e for e in seen if e.event == "agent-dispatch.agent.failed")
    assert "simulated agent failure" in str(failed.payload.get("error"))
    assert failed.payload["latency_ms"] > 0


def test_an_emit_failure_never_reaches_the_caller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tried: list[str] = []

    def broken(event: str, *_: Any, **__: Any) -> None:
        tried.append(event)
        raise RuntimeError("events backend down")

    monkeypatch.setattr(events, "emit_event", broken)
    caplog.set_level(logging.WARNING, logger=events.__name__)

    events.job_status_changed("j1", "task-1", "FAILED", error="x")
    events.agent_status_changed("j1", "task-1", "a1", "agent", "FAILED")

    # Both were really attempted, neither raised, and each failure left a warning behind.
    assert tried == ["agent-dispatch.job.failed", "agent-dispatch.agent.failed"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "could not emit agent-dispatch.job.failed",
        "could not emit agent-dispatch.agent.failed",
    ]
