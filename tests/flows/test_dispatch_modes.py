"""DISPATCH_MODE=traced (default) and steps: which task runs a job makes, and a long traced run
keeping none of Prefect's links from ended task runs' results (its memory stays flat)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prefect.context import FlowRunContext
from prefect.events.schemas.events import Event

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.flows import dispatch as dispatch_module
from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow
from agent_dispatch.simulators.queue import SimulatedQueue
from agent_dispatch.tasks.run_memory import forget_ended_results
from tests.support.flow_events import task_runs

pytestmark = [pytest.mark.flow]


def agents(add_agent: Callable[..., str]) -> None:
    add_agent("fast", "fast:delay=0.05")
    add_agent("slow", "slow:delay=20")


def watch_forgetting(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """As each job ends: how many links the run dropped, and how many it still keeps."""
    dropped: list[int] = []
    left: list[int] = []

    def watched() -> int:
        dropped.append(forget_ended_results())
        ctx = FlowRunContext.get()
        assert ctx is not None
        left.append(len(ctx.run_results))
        return dropped[-1]

    monkeypatch.setattr(dispatch_module, "forget_ended_results", watched)
    return dropped, left


async def test_traced_mode_makes_a_task_run_per_agent_call_and_none_per_step(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    recorded: Callable[[], list[Event]],
) -> None:
    make_runtime()  # the default mode
    agents(add_agent)
    task = queue.add_task(title="t", category="general")

    summary = await dispatch_flow(DispatchParams())

    assert [(j.outcome, j.winner) for j in summary.jobs] == [("COMPLETED", "fast")]
    runs = task_runs(recorded())
    calls = {name: state for name, state, _ in runs.values() if " <- " in name}
    assert calls == {f"fast <- {task['id']}": "Completed", f"slow <- {task['id']}": "Cancelled"}
    steps = {name.split(" ")[0] for name, _, _ in runs.values()}
    assert not steps & {"plan", "take", "finish", "dispatch"}
    assert not any(s.startswith("store-and-lease") for s in steps)  # intake is plain too


async def test_steps_mode_makes_a_task_run_per_step_too(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    recorded: Callable[[], list[Event]],
) -> None:
    make_runtime(dispatch_mode="steps")
    agents(add_agent)
    task = queue.add_task(title="t", category="general")

    summary = await dispatch_flow(DispatchParams())

    assert [(j.outcome, j.winner) for j in summary.jobs] == [("COMPLETED", "fast")]
    names = {name for name, _, _ in task_runs(recorded()).values()}
    qid = task["id"]
    assert {f"plan {qid} #1", f"take {qid}", f"finish {qid}"} <= names
    assert {f"fast <- {qid}", f"slow <- {qid}"} <= names
    assert any(n.startswith("store-and-lease") for n in names)


@pytest.mark.parametrize("mode", ["traced", "lean"])
async def test_a_run_drops_prefects_links_to_ended_task_runs_as_each_job_ends(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    make_runtime(dispatch_mode=mode)
    agents(add_agent)
    for i in range(4):
        queue.add_task(title=f"t{i}", category="general")
    dropped, left = watch_forgetting(monkeypatch)

    summary = await dispatch_flow(DispatchParams(page_size=2))

    assert summary.count("COMPLETED") == 4
    assert len(dropped) == 4  # once per job, as it ended
    assert sum(dropped) > 0  # Prefect had linked the task runs' results ...
    assert left == [0, 0, 0, 0]  # ... and none is kept


async def test_steps_mode_keeps_the_links_its_steps_use(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_runtime(dispatch_mode="steps")
    agents(add_agent)
    queue.add_task(title="t", category="general")
    dropped, left = watch_forgetting(monkeypatch)

    summary = await dispatch_flow(DispatchParams())

    assert summary.count("COMPLETED") == 1
    assert dropped == [0]  # nothing dropped as the job ended ...
    assert left[0] > 0  # ... its steps' links are all still there


def test_outside_a_flow_run_there_is_nothing_to_forget() -> None:
    assert forget_ended_results() == 0
