"""The operator deployments as real Prefect flow runs: cancel-job and agent-admin do what the
CLI does, a refusal ends the run Failed with its one line, and their forms are typed."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.utilities.callables import parameter_schema

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.flows.operator import (
    AgentAdminParams,
    CancelJobParams,
    agent_admin_flow,
    cancel_job_flow,
)
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.reliability import in_progress, job

pytestmark = [pytest.mark.flow, pytest.mark.postgres]
YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"


async def server_view(state: State[Any]) -> FlowRun:
    async with get_client() as client:
        return await client.read_flow_run(state.state_details.flow_run_id)  # type: ignore[arg-type]


async def test_cancel_job_cancels_a_running_job_and_tells_the_queue(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    job_id, qid = in_progress(rt, queue, lease_lost=False)

    state = await cancel_job_flow(CancelJobParams(job=qid), return_state=True)
    run = await server_view(state)

    assert run.state_type == StateType.COMPLETED
    assert run.name.startswith("cancel-job 20") and run.name.endswith(f" UTC {qid}")
    assert run.state is not None
    assert run.state.message == f"cancelled job {qid}: 1 agent call(s) stopped, queue told"
    assert job(rt, job_id).status == "CANCELLED"
    assert queue.task(qid)["status"] == "CANCELLED"


async def test_cancel_job_of_an_unknown_job_fails_with_the_reason(rt: Runtime) -> None:
    state = await cancel_job_flow(CancelJobParams(job="no-such-task"), return_state=True)
    run = await server_view(state)

    assert run.state_type == StateType.FAILED
    assert run.state is not None and run.state.message == "no job 'no-such-task'"


async def test_agent_admin_adds_deactivates_activates_and_removes_an_agent(
    rt: Runtime, farm: AgentFarm
) -> None:
    farm.add("helper", "fast")

    async def admin(**fields: Any) -> FlowRun:
        params = AgentAdminParams(name="helper", **fields)
        return await server_view(await agent_admin_flow(params, return_state=True))

    def stored() -> tuple[bool, list[str]] | None:
        with rt.uow() as uow:
            agent = uow.agents.get_by_name("helper")
            return None if agent is None else (agent.active, list(agent.categories))

    added = await admin(action="add", url=farm.url_for("helper"), categories=["general"])
    assert added.state_type == StateType.COMPLETED
    assert added.name.endswith(" UTC add helper")
    assert stored() == (True, ["general"])
    assert (await admin(action="deactivate")).state_type == StateType.COMPLETED
    assert stored() == (False, ["general"])
    assert (await admin(action="activate")).state_type == StateType.COMPLETED
    assert stored() == (True, ["general"])
    assert (await admin(action="remove")).state_type == StateType.COMPLETED
    assert stored() is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"action": "remove", "name": "ghost"}, "no agent named 'ghost'"),
        (
            {"action": "add", "name": "a", "url": "ftp://x/", "categories": ["c"]},
            "agent URL refused: scheme 'ftp' is not http or https",
        ),
        (
            {"action": "add", "name": "a", "url": "http://127.0.0.1:9", "categories": ["c"],
             "token_secret": "never-saved"},
            "token refused: secret block 'never-saved' not found on the Prefect server",
        ),
    ],
)  # fmt: skip
async def test_agent_admin_refusals_fail_the_run_with_the_services_reason(
    rt: Runtime, fields: dict[str, Any], reason: str
) -> None:
    state = await agent_admin_flow(AgentAdminParams(**fields), return_state=True)
    run = await server_view(state)

    assert run.state_type == StateType.FAILED
    assert run.state is not None and run.state.message == reason


def test_the_operator_forms_are_typed() -> None:
    cancel = parameter_schema(cancel_job_flow).model_dump()
    admin = parameter_schema(agent_admin_flow).model_dump()

    job_field = cancel["definitions"]["CancelJobParams"]["properties"]["job"]
    assert (job_field["type"], job_field["minLength"]) == ("string", 1)
    assert cancel["definitions"]["CancelJobParams"]["required"] == ["job"]
    props = admin["definitions"]["AgentAdminParams"]["properties"]
    assert admin["definitions"]["AgentAction"]["enum"] == [
        "add",
        "activate",
        "deactivate",
        "remove",
    ]
    assert admin["definitions"]["AgentAdminParams"]["required"] == ["action", "name"]
    assert props["protocol"]["enum"] == ["http-json", "a2a"]
    assert (props["skill_level"]["minimum"], props["skill_level"]["maximum"]) == (1, 5)
    assert props["token_secret"]["anyOf"][0] == {"type": "string"}
    with pytest.raises(ValueError, match="add needs the agent's url"):
        AgentAdminParams(action="add", name="x")


def test_every_deployment_names_an_installed_flow_by_module_path() -> None:
    spec = yaml.safe_load(YAML.read_text())
    found = {}
    for d in spec["deployments"]:
        module, _, attr = d["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module), attr)
        assert isinstance(flow, Flow), d["name"]
        found[d["name"]] = flow.name
    assert found["cancel-job"] == "cancel-job" and found["agent-admin"] == "agent-admin"
    assert {"dispatch", "sweep", "health-check", "analytics"} <= set(found)
