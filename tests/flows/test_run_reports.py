"""What each run tells in the Prefect UI, read back from the Prefect API: keyed artifacts,
readable run names, prefilled parameter forms, and a dispatch run that could not work
ending Failed with its one line."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.utilities.callables import parameter_schema

from agent_dispatch.bootstrap import Runtime, set_runtime
from agent_dispatch.flows.analytics import AnalyticsParams, analytics_flow
from agent_dispatch.flows.dispatch import DispatchParams, DispatchSummary, dispatch_flow
from agent_dispatch.flows.health import health_flow
from agent_dispatch.flows.sweep import SweepParams, sweep_flow
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import QUEUE_TOKEN, make_settings
from tests.support.reliability import age_lease, claim, store

pytestmark = [pytest.mark.flow, pytest.mark.postgres]


async def run_and_artifacts(flow_run_id: uuid.UUID | None) -> tuple[FlowRun, dict[str, Any]]:
    """The flow run as the server has it, and its artifacts by key."""
    assert flow_run_id is not None
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return run, {a.key: a for a in found if a.key}


def table(artifact: Any) -> list[dict[str, Any]]:
    assert artifact.type == "table"
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert isinstance(data, list)
    return data


async def test_dispatch_publishes_a_keyed_table_of_its_jobs_under_a_readable_name(
    rt: Runtime, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("quick", "fast:delay=0.05", categories=("general",))
    add_agent("broken", "failing", categories=("doomed",))
    won = queue.add_task(title="t1", category="general")
    lost = queue.add_task(title="t2", category="doomed")

    state = await dispatch_flow(DispatchParams(max_jobs=5), return_state=True)
    run, artifacts = await run_and_artifacts(state.state_details.flow_run_id)

    assert run.state_type == StateType.COMPLETED
    assert run.name.startswith("dispatch 20") and run.name.endswith(" UTC max 5 jobs")
    rows = {r["job"]: r for r in table(artifacts["dispatch-jobs"])}
    assert set(rows) == {won["id"], lost["id"]}
    assert (rows[won["id"]]["outcome"], rows[won["id"]]["winner"]) == ("COMPLETED", "quick")
    assert rows[won["id"]]["latency"].endswith(" ms")
    assert (rows[lost["id"]]["outcome"], rows[lost["id"]]["winner"]) == ("FAILED", "")
    assert "broken" in rows[lost["id"]]["detail"]
    assert artifacts["dispatch-jobs"].description == "2 taken, 0 rejected: 1 completed, 1 failed"


async def test_a_run_refused_by_the_queue_ends_failed_with_the_one_line_and_its_summary(
    make_runtime: Callable[..., Runtime], queue: SimulatedQueue
) -> None:
    make_runtime(remote_queue_token="not-the-queue-token", execution_retry_count=0)
    queue.add_task(title="t", category="general")

    state = await dispatch_flow(return_state=True)
    run, artifacts = await run_and_artifacts(state.state_details.flow_run_id)

    assert run.state_type == StateType.FAILED
    assert run.state is not None
    assert run.state.message == "remote queue: remote queue rejected the token (401)"
    summary = await state.aresult(raise_on_failure=False)
    assert isinstance(summary, DispatchSummary) and summary.stopped_reason == run.state.message
    assert "stopped: remote queue" in (artifacts["dispatch-jobs"].description or "")


async def test_a_run_without_its_database_ends_failed_naming_the_database(
    queue: SimulatedQueue, prefect_harness: None
) -> None:
    nowhere = "postgresql://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    rt = Runtime(make_settings(nowhere, remote_queue_url=queue.url, remote_queue_token=QUEUE_TOKEN))
    previous = set_runtime(rt)
    queue.add_task(title="t", category="general")
    try:
        state = await dispatch_flow(return_state=True)
    finally:
        set_runtime(previous)
        rt.dispose()
    run, _ = await run_and_artifacts(state.state_details.flow_run_id)

    assert run.state_type == StateType.FAILED
    message = run.state.message if run.state else ""
    assert message and message.startswith("database: ") and "\n" not in message
    assert queue.task(queue.tasks_in("OPEN")[0]["id"])["status"] == "OPEN"


async def test_health_publishes_a_keyed_table_of_every_agent(
    rt: Runtime, add_agent: Callable[..., str]
) -> None:
    add_agent("sick", "unhealthy")
    add_agent("well", "fast")

    state = await health_flow(return_state=True)
    run, artifacts = await run_and_artifacts(state.state_details.flow_run_id)

    assert run.name.startswith("health 20")
    rows = {r["agent"]: r for r in table(artifacts["agent-health"])}
    assert {a: r["health"] for a, r in rows.items()} == {"sick": "DOWN", "well": "ok"}
    assert artifacts["agent-health"].description == "health: 1 of 2 agents healthy"


async def test_sweep_publishes_a_markdown_summary_of_what_it_rescued(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    task = queue.add_task(title="t", category="general")
    job_id = store(rt, task["id"])
    claim(rt, task["id"], "dead-worker")
    queue.set_status(task["id"], "DISTRIBUTED")
    age_lease(rt, job_id)

    state = await sweep_flow(SweepParams(settle_seconds=0), return_state=True)
    run, artifacts = await run_and_artifacts(state.state_details.flow_run_id)

    assert run.name.startswith("sweep 20")
    summary = artifacts["sweep-summary"]
    assert summary.type == "markdown"
    assert "# sweep: 1 rescued" in summary.data
    assert f"| {task['id']} | rescued | DISTRIBUTED on the queue |" in summary.data


def test_analytics_links_the_dashboard_it_wrote(
    runtime: Runtime, prefect_harness: None, tmp_path: Path
) -> None:
    state = analytics_flow(AnalyticsParams(out_dir=str(tmp_path)), return_state=True)

    with get_client(sync_client=True) as client:
        flow_run_id = state.state_details.flow_run_id
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    link = {a.key: a for a in found}["analytics-dashboard"]
    # Prefect stores a link artifact as markdown, the link as its only content.
    uri = (tmp_path / "index.html").as_uri()
    assert (link.type, link.data) == ("markdown", f"[Analytics dashboard (index.html)]({uri})")


@pytest.mark.parametrize(
    ("flow", "model", "defaults"),
    [
        (dispatch_flow, "DispatchParams", {"max_jobs": None, "page_size": None}),
        (sweep_flow, "SweepParams", {"limit": 500, "settle_seconds": 10.0}),
    ],
)
def test_the_custom_run_form_is_prefilled_with_the_defaults(
    flow: Any, model: str, defaults: dict[str, Any]
) -> None:
    schema = parameter_schema(flow).model_dump()
    assert schema["properties"]["params"]["default"] == defaults
    assert schema["properties"]["params"]["$ref"] == f"#/definitions/{model}"
    assert schema.get("required", []) == []
