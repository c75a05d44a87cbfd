"""DISPATCH_MODE=lean: one `dispatch-job` task run per job, and still every row, status and
event an operator reads in traced mode."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.events.clients import AssertingEventsClient
from prefect.events.schemas.events import Event
from prefect.events.worker import EventsWorker

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue

pytestmark = [pytest.mark.flow]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[Event]]]:
    """What the flow emits, with the related resources Prefect attaches from the run context."""
    worker = EventsWorker.instance(AssertingEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)

    def drained() -> list[Event]:
        worker.wait_until_empty()
        client = worker._client
        assert isinstance(client, AssertingEventsClient)
        return [e for e in client.events if e.event.startswith("agent-dispatch.")]

    try:
        yield drained
    finally:
        worker.drain()


def related(event: Event, role: str) -> list[str]:
    return [r.id for r in event.related if r.role == role]


async def final_task_runs(flow_run_id: str) -> list[TaskRun]:
    """The flow run's task runs once the server has recorded each one's final state."""
    async with get_client() as client:
        for _ in range(100):
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if runs and all(r.state is not None and r.state.is_final() for r in runs):
                return runs
            await asyncio.sleep(0.1)
    raise AssertionError(f"task runs of {flow_run_id} never all ended: {runs}")


async def test_lean_mode_runs_each_job_in_one_task_run_with_every_row_status_and_event(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
    recorded: Callable[[], list[Event]],
) -> None:
    rt = make_runtime(dispatch_mode="lean")
    ids = {
        "fast": add_agent("fast", "fast:delay=0.05"),
        "slow": add_agent("slow", "slow:delay=20"),
        "broken": add_agent("broken", "failing"),
    }
    tasks = [queue.add_task(title=f"t{i}", category="general") for i in range(2)]

    summary = await dispatch_flow(DispatchParams())

    assert {(j.queue_task_id, j.outcome, j.winner) for j in summary.jobs} == {
        (t["id"], "COMPLETED", "fast") for t in tasks
    }
    seen = recorded()
    run_ids: set[str] = set()
    for t in tasks:
        # Rows and statuses, as traced mode writes them.
        with rt.uow() as uow:
            job = uow.jobs.find(t["id"])
            assert job is not None
            rows = {r.agent_name: r for d in job.distributions for r in d.agents}
            flow_run_id = job.distributions[0].flow_run_id
        assert (job.status, job.queue_status) == ("COMPLETED", "COMPLETED")
        assert rows["fast"].status == "COMPLETED" and rows["fast"].won
        assert (rows["slow"].status, rows["slow"].failure_kind) == ("CANCELLED", "cancelled")
        assert rows["broken"].status == "FAILED"
        assert [p.body["status"] for p in queue.patches if p.task_id == t["id"]] == [
            "DISTRIBUTED",
            "IN_PROGRESS",
            "COMPLETED",
        ]
        assert queue.task(t["id"])["agentId"] == ids["fast"]
        # Every row notes the one task run that ran the job.
        assert len({r.task_run_id for r in rows.values()}) == 1
        run_ids.add(str(rows["fast"].task_run_id))
        # Events: the job's walk, each agent's, all from that task run.
        mine = [e for e in seen if related(e, "job") == [f"agent-dispatch.job.{job.id}"]]
        mine += [e for e in seen if e.resource.id == f"agent-dispatch.job.{job.id}"]
        assert [e.event for e in mine if e.resource.id.startswith("agent-dispatch.job.")] == [
            "agent-dispatch.job.distributed",
            "agent-dispatch.job.in_progress",
            "agent-dispatch.job.completed",
        ]
        by_agent: dict[str, list[str]] = {}
        for e in mine:
            if e.event.startswith("agent-dispatch.agent."):
                name = e.resource["prefect.resource.name"]
                by_agent.setdefault(name, []).append(e.event.rsplit(".", 1)[1])
        assert by_agent == {
            "fast": ["assigned", "working", "completed"],
            "slow": ["assigned", "working", "cancelled"],
            "broken": ["assigned", "working", "failed"],
        }
        assert {tuple(related(e, "task-run")) for e in mine} == {
            (f"prefect.task-run.{rows['fast'].task_run_id}",)
        }
    # The UI's flow-run view: one dispatch-job run per job, Completed, saying who won; no
    # step or call-agent runs.
    assert flow_run_id is not None
    runs = await final_task_runs(flow_run_id)
    per_job = [r for r in runs if r.name.startswith("dispatch ")]
    assert sorted(r.name for r in per_job) == sorted(f"dispatch {t['id']}" for t in tasks)
    assert {str(r.id) for r in per_job} == run_ids
    for r in per_job:
        assert r.state is not None and r.state.is_completed()
        assert "COMPLETED by fast" in (r.state.message or "")
    names = {r.name.split(" ")[0] for r in runs}
    assert not names & {"plan", "take", "finish"} and not [r for r in runs if " <- " in r.name]
