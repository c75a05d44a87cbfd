"""A workflow through the dispatch flow: real Prefect, PostgreSQL, loopback queue and agents."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Job
from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow
from agent_dispatch.services.workflows import add_workflow
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.behaviours import behaviour
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.services.test_workflow_budget import FAN
from tests.services.workflow_support import EXAMPLE

pytestmark = [pytest.mark.flow]


async def test_a_workflow_task_runs_as_one_subflow_with_a_subflow_per_step(
    rt: Runtime, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_workflow(rt, EXAMPLE)
    add_agent(
        "writer",
        behaviour("fast", delay=0.1, result="a draft"),
        categories=("writing",),
        tags=("draft",),
    )
    add_agent(
        "reviewer", behaviour("fast", delay=0.5, result={"verdict": "ok"}), categories=("review",)
    )
    add_agent("translator", behaviour("fast", delay=0.5, result="fr"), categories=("translate",))
    plain = queue.add_task(title="plain", category="writing", tags=["draft"])
    task = queue.add_task(title="Cats", category="general", workflow="write-review-translate")

    summary = await dispatch_flow(DispatchParams())

    assert {j.queue_task_id: j.outcome for j in summary.jobs} == {
        plain["id"]: "COMPLETED",
        task["id"]: "COMPLETED",
    }
    assert queue.task(task["id"])["result"] == {
        "text": "a draft",
        "review": {"verdict": "ok"},
        "fr": "fr",
    }
    with rt.uow() as uow:
        steps = {
            j.step_id: j for j in uow.session.query(Job).filter(Job.parent_job_id.is_not(None))
        }
        flow_run_ids = {d.flow_run_id for j in steps.values() for d in j.distributions}
    assert {k: j.status for k, j in steps.items()} == {
        "draft": "COMPLETED",
        "review": "COMPLETED",
        "translate": "COMPLETED",
        "fix": "SKIPPED",
    }
    async with get_client() as client:
        [run] = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name={"any_": [f"write-review-translate <- {task['id']}"]}
            )
        )
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
            )
        )
    assert run.state is not None and run.state.is_completed()
    names = sorted(c.name for c in children)
    assert names == sorted(f"{s} <- {task['id']}/{s}" for s in ("draft", "review", "translate"))
    assert flow_run_ids == {str(c.id) for c in children}  # each step's attempt names its run


async def test_steps_share_the_runs_job_concurrency_with_more_parents_than_slots(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    rt = make_runtime(job_concurrency=2)
    add_workflow(rt, FAN)
    # Calls long enough to overlap however slowly Prefect starts each step's subflow; the
    # agent itself is no limit.
    add_agent("worker", "fast:delay=2", max_concurrency=50)
    parents = [queue.add_task(title=f"p{i}", workflow="fan") for i in range(3)]

    summary = await asyncio.wait_for(dispatch_flow(DispatchParams()), timeout=120)

    assert {j.queue_task_id: j.outcome for j in summary.jobs} == {
        p["id"]: "COMPLETED" for p in parents
    }
    # The step subflows got the dispatch run's own slots: one agent call per race, two at once.
    assert farm.peak_in_flight("worker") == 2
