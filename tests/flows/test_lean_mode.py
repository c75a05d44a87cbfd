"""DISPATCH_MODE=lean: one `dispatch-job` task run per job, and still every row, status and
event an operator reads in traced mode."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prefect.events.schemas.events import Event

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.flow_events import related, task_runs

pytestmark = [pytest.mark.flow]


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
    everything = recorded()
    seen = [e for e in everything if e.event.startswith("agent-dispatch.")]
    run_ids: set[str] = set()
    for t in tasks:
        # Rows and statuses, as traced mode writes them.
        with rt.uow() as uow:
            job = uow.jobs.find(t["id"])
            assert job is not None
            rows = {r.agent_name: r for d in job.distributions for r in d.agents}
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
    runs = task_runs(everything)
    per_job = {rid: run for rid, run in runs.items() if run[0].startswith("dispatch ")}
    assert sorted(name for name, _, _ in per_job.values()) == sorted(
        f"dispatch {t['id']}" for t in tasks
    )
    assert set(per_job) == {f"prefect.task-run.{r}" for r in run_ids}
    for _, state, message in per_job.values():
        assert state == "Completed" and "COMPLETED by fast" in (message or "")
    names = {name.split(" ")[0] for name, _, _ in runs.values()}
    assert not names & {"plan", "take", "finish"}
    assert not [name for name, _, _ in runs.values() if " <- " in name]
