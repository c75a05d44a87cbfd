"""A workflow run as Prefect runs: one subflow run per workflow run (`<workflow> <- <task>`),
and inside it one subflow run per step (`<step> <- <task>/<step>`) holding that step's agent
calls as task runs (and its plan, take and finish too in DISPATCH_MODE=steps). The UI shows
the run's steps side by side, as they overlap in time."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.services.dispatching import JobLine, dispatch_one
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.job_pool import RaceSlots
from agent_dispatch.services.workflow_runs import run_workflow
from agent_dispatch.tasks.job_steps import flow_steps

# Parameters are our own objects (leases, specs, the run's slots), passed as they are;
# results stay in memory like every step's (they carry payloads and agent answers).


@flow(
    name="workflow-step",
    flow_run_name="{claim.spec.step_id} <- {claim.spec.queue_task_id}",
    validate_parameters=False,
    persist_result=False,
)
async def step_flow(claim: Claim, capacity_wait: float) -> JobLine:
    """One step job, plan -> take -> race -> finish, as the dispatch flow runs a job."""
    return await dispatch_one(flow_steps(str(flow_run.id)), claim, capacity_wait)


@flow(
    name="workflow",
    flow_run_name="{claim.spec.workflow} <- {claim.spec.queue_task_id}",
    validate_parameters=False,
    persist_result=False,
)
async def workflow_flow(claim: Claim, slots: RaceSlots | None = None) -> JobLine:
    """Drive one leased workflow parent: its steps as they become ready, then its ending.
    `slots`: the dispatch run's race budget (JOB_CONCURRENCY), which its steps share."""
    rt = get_runtime()
    wait = rt.settings.capacity_wait_seconds

    async def step(step_claim: Claim) -> JobLine:
        return await step_flow(step_claim, wait)

    return await run_workflow(rt, claim, step, slots)
