"""The Prefect way, proven on a real server: PostgreSQL-backed `prefect server start`, the
process work pool, `prefect deploy` from deployments/prefect.yaml, a worker, a schedule that
fires, an ad-hoc run with parameters, agent-dispatch events, an automation, and the UI.

Self-contained: its own databases, free ports, PREFECT_HOME in a temp dir, loopback queue and
agents; every process it starts is stopped at the end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import Artifact, FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventRelatedFilter,
    EventResourceFilter,
)
from prefect.events.schemas.events import ReceivedEvent

from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from deployments.automations import JOB_FAILED
from tests.support.browser import chromium
from tests.support.postgres import DatabaseFactory
from tests.support.prefect_server import REPO, PrefectStack, prefect_stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.browser]

TOKEN = "e2e-queue-token"
POOL = "agent-dispatch"
OPTIONAL_FLOWS = {
    "analytics": "flows/analytics.py",
    "health-check": "flows/health.py",
    "sweep": "flows/sweep.py",
}
# Run from the UI by operators: no schedule, no concurrency limit.
OPERATOR_FLOWS = {"cancel-job": "flows/operator.py", "agent-admin": "flows/operator.py"}
ENTRYPOINT = "agent_dispatch.flows.dispatch:dispatch_flow"
T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float, what: str, every: float = 1.0
) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def deployable() -> list[str]:
    """The dispatch deployment, and the others whose flow files exist in this tree."""
    others = {**OPTIONAL_FLOWS, **OPERATOR_FLOWS}
    return ["dispatch", *(name for name, path in others.items() if (REPO / path).exists())]


def keep_artifact(path: Path) -> None:
    """Copy a screenshot to $AD_E2E_ARTIFACTS (CI uploads it) when that is set."""
    target = os.environ.get("AD_E2E_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


async def events_of(
    client: PrefectClient, since: dt.datetime, **filters: Any
) -> list[ReceivedEvent]:
    page = await client.read_events(
        EventFilter(occurred=EventOccurredFilter(since=since), order="ASC", **filters), limit=50
    )
    found = list(page.events)
    while page.next_page:
        page = await client.read_events_page(page.next_page)
        found.extend(page.events)
    return found


def related_ids(event: ReceivedEvent, role: str) -> set[str]:
    return {r.id for r in event.related if r.role == role}


async def test_deploy_serve_schedule_adhoc_events_and_ui(
    pg_factory: DatabaseFactory, database_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    queue = SimulatedQueue(TOKEN)
    farm = AgentFarm()
    farm.add("quick", "fast:delay=0.3")
    farm.add("laggard", "slow:delay=20")
    farm.add("broken", "failing")
    with queue.serve(), farm.serve():
        general = queue.add_task(title="Summarise", category="general", payload={"n": 1})
        doomed = queue.add_task(title="Impossible", category="doomed", payload={"n": 2})
        flow_env = {
            "DATABASE_URL": database_url,
            "REMOTE_QUEUE_URL": queue.url,
            "REMOTE_QUEUE_TOKEN": TOKEN,
            "AGENT_ALLOW_PRIVATE_NETWORKS": "true",
            "DEFAULT_AGENT_TIMEOUT": "15000",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }
        with prefect_stack(pg_factory.admin, flow_env) as stack:
            stack.start_server()
            for name, cats in (("quick", "general"), ("laggard", "general"), ("broken", "doomed")):
                stack.cli(
                    "agent-dispatch",
                    "agents",
                    "add",
                    name,
                    farm.url_for(name),
                    "--category",
                    cats,
                    "--max-concurrency",
                    "4",
                )
            stack.cli("prefect", "work-pool", "create", POOL, "--type", "process")
            names = deployable()
            name_args = [arg for n in names for arg in ("--name", n)]
            out = stack.cli(
                "prefect",
                "--no-prompt",
                "deploy",
                "--prefect-file",
                "deployments/prefect.yaml",
                *name_args,
            )
            for n in names:
                assert f"/{n}' successfully created" in out, out
            out = stack.cli("python", "-m", "deployments.automations")
            assert JOB_FAILED in out
            async with PrefectClient(stack.api_url) as client:
                dep = await check_deployment(client)
                # Hold the schedule while the ad-hoc run works, so that run (not a scheduled
                # one) takes the first jobs; its runs are created again on resume.
                schedule_id = str(dep.schedules[0].id)
                stack.cli(
                    "prefect", "deployment", "schedule", "pause", "dispatch/dispatch", schedule_id
                )
                feed = stack.stream_events()
                # Workers start outside the clone: the flows come from the installed package.
                for worker in ("e2e-worker-1", "e2e-worker-2"):
                    stack.start_worker(POOL, worker)

                out = stack.cli(
                    "prefect",
                    "deployment",
                    "run",
                    "dispatch/dispatch",
                    "-p",
                    'params={"max_jobs": 2}',
                )
                match = re.search(r"UUID: ([0-9a-f-]{36})", out)
                assert match, out
                adhoc = await finished(client, uuid.UUID(match.group(1)), timeout=180)
                assert adhoc.state_name == "Completed", adhoc.state
                assert adhoc.parameters == {"params": {"max_jobs": 2}}
                assert queue.task(general["id"])["status"] == "COMPLETED"
                assert queue.task(doomed["id"])["status"] == "FAILED"
                await check_agent_task_runs(client, adhoc)

                # Work for the schedule; resuming it schedules runs again at once.
                later = queue.add_task(title="Translate", category="general", payload={"n": 3})
                stack.cli(
                    "prefect", "deployment", "schedule", "resume", "dispatch/dispatch", schedule_id
                )
                scheduled = await scheduled_run_done(client, adhoc, timeout=240)
                assert scheduled.parameters == {"params": {"max_jobs": 100}}
                assert queue.task(later["id"])["status"] == "COMPLETED"

                await check_events(client, since, adhoc, feed.json_lines())
                await check_automation_fired(client, since)
                admin = await check_agent_admin(stack, client)
                await check_ui(stack, client, adhoc, scheduled, admin, tmp_path, general["id"])
    print(f"deploy proof took {time.monotonic() - started:.0f} s")


async def check_deployment(client: PrefectClient) -> DeploymentResponse:
    dep = await client.read_deployment_by_name("dispatch/dispatch")
    assert dep.work_pool_name == POOL
    assert dep.entrypoint == ENTRYPOINT
    assert not dep.pull_steps  # no clone to change into
    assert [s.schedule.model_dump().get("interval") for s in dep.schedules] == [
        dt.timedelta(seconds=60)
    ]
    # Typed parameters: the UI renders DispatchParams as a form from this schema.
    props = dep.parameter_openapi_schema["definitions"]["DispatchParams"]["properties"]
    assert props["max_jobs"]["anyOf"][0] == {"type": "integer", "minimum": 1}
    others = {d.name: d for d in await client.read_deployments() if d.name != "dispatch"}
    assert set(others) == set(deployable()) - {"dispatch"}
    for name in set(others) & set(OPERATOR_FLOWS):
        assert not others.pop(name).schedules, name
    for name, other in others.items():
        assert other.global_concurrency_limit is not None, name
        assert other.global_concurrency_limit.limit == 1, name
        assert other.concurrency_options is not None
        assert other.concurrency_options.collision_strategy == "CANCEL_NEW", name
    return dep


async def finished(client: PrefectClient, run_id: uuid.UUID, timeout: float) -> FlowRun:
    async def probe() -> FlowRun | None:
        run = await client.read_flow_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    return await eventually(probe, timeout, f"flow run {run_id} to finish")


async def check_agent_task_runs(client: PrefectClient, run: FlowRun) -> None:
    """One call-agent task run per agent call: the winner Completed, the loser Cancelled.

    The server records task runs from the events their engine sends, a moment after the fact.
    """
    want = {"quick": "Completed", "laggard": "Cancelled", "broken": "Failed"}
    seen: dict[str, str | None] = {}

    async def probe() -> bool:
        task_runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
        seen.clear()
        seen.update({t.name.split(" <- ")[0]: t.state_name for t in task_runs if " <- " in t.name})
        return seen == want

    try:
        await eventually(probe, 60, "the per-agent task runs")
    except AssertionError:
        raise AssertionError(f"per-agent task runs: {seen}, wanted {want}") from None


async def scheduled_run_done(client: PrefectClient, adhoc: FlowRun, timeout: float) -> FlowRun:
    async def probe() -> FlowRun | None:
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[adhoc.deployment_id]))
        )
        done = [r for r in runs if r.auto_scheduled and r.state_name == "Completed"]
        return done[0] if done else None

    return await eventually(probe, timeout, "a scheduled dispatch run to complete", every=2.0)


async def check_events(
    client: PrefectClient, since: dt.datetime, run: FlowRun, streamed: list[dict[str, Any]]
) -> None:
    flow_run_resource = f"prefect.flow-run.{run.id}"

    async def probe() -> list[ReceivedEvent] | None:
        found = await events_of(
            client,
            since,
            event=EventNameFilter(prefix=["agent-dispatch."]),
            related=EventRelatedFilter(id=[flow_run_resource]),
        )
        return (
            found
            if {"agent-dispatch.job.failed", "agent-dispatch.job.completed"}
            <= {e.event for e in found}
            else None
        )

    found = await eventually(probe, 30, "agent-dispatch events of the ad-hoc run")
    names = {e.event for e in found}
    assert {
        "agent-dispatch.job.distributed",
        "agent-dispatch.job.in_progress",
        "agent-dispatch.job.completed",
        "agent-dispatch.job.failed",
        "agent-dispatch.agent.working",
        "agent-dispatch.agent.completed",
        "agent-dispatch.agent.cancelled",
        "agent-dispatch.agent.failed",
    } <= names, names
    for e in found:
        assert related_ids(e, "flow-run") == {flow_run_resource}
        assert related_ids(e, "deployment") == {f"prefect.deployment.{run.deployment_id}"}
        if e.event.startswith("agent-dispatch.agent."):
            assert e.resource.id.startswith("agent-dispatch.agent.")
            assert len(related_ids(e, "job")) == 1
            if e.event.rsplit(".", 1)[1] in ("working", "completed", "failed"):
                # From the call's own call-agent task run; ASSIGNED (the take) and a stopped
                # loser's CANCELLED (the finish) come from the job's steps, in the flow run.
                assert related_ids(e, "task-run"), "a call's events come from its task run"
        else:
            assert e.resource.id.startswith("agent-dispatch.job.")
    won = next(e for e in found if e.event == "agent-dispatch.job.completed")
    assert [r.name for r in won.related if r.role == "agent"] == ["quick"]
    # The same events reached `prefect events stream` live.
    live = [e for e in streamed if str(e.get("event", "")).startswith("agent-dispatch.")]
    live_names = {str(e["event"]) for e in live}
    assert {"agent-dispatch.agent.working", "agent-dispatch.job.completed"} <= live_names, (
        live_names
    )
    assert any(
        r.get("prefect.resource.id") == flow_run_resource
        for e in live
        for r in e.get("related", [])  # type: ignore[union-attr]
    )


async def check_automation_fired(client: PrefectClient, since: dt.datetime) -> None:
    automations = await client.read_automations_by_name(JOB_FAILED)
    assert len(automations) == 1
    resource = f"prefect.automation.{automations[0].id}"

    async def probe() -> list[ReceivedEvent] | None:
        return (
            await events_of(
                client,
                since,
                event=EventNameFilter(name=["prefect.automation.triggered"]),
                resource=EventResourceFilter(id=[resource]),
            )
            or None
        )

    await eventually(probe, 30, f"automation {JOB_FAILED!r} to fire")


async def check_agent_admin(stack: PrefectStack, client: PrefectClient) -> FlowRun:
    """An operator without a shell takes an agent out of matching through agent-admin."""
    out = stack.cli(
        "prefect",
        "deployment",
        "run",
        "agent-admin/agent-admin",
        "-p",
        'params={"action": "deactivate", "name": "broken"}',
    )
    match = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert match, out
    run = await finished(client, uuid.UUID(match.group(1)), timeout=120)
    assert run.state_name == "Completed", run.state
    assert run.state is not None and run.state.message == "agent broken is now inactive"
    listed = stack.cli("agent-dispatch", "agents", "list", "--json")
    assert re.search(r'"name": "broken",[^}]*"active": false', listed), listed
    return run


async def dispatch_jobs_artifact(client: PrefectClient, run: FlowRun) -> Artifact:
    found = await client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["dispatch-jobs"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]),
        )
    )
    assert len(found) == 1, found
    return found[0]


async def check_ui(
    stack: PrefectStack,
    client: PrefectClient,
    adhoc: FlowRun,
    scheduled: FlowRun,
    admin: FlowRun,
    tmp: Path,
    job_id: str,
) -> None:
    """The UI shows the deployment's runs, the per-agent task runs of the ad-hoc run, its
    dispatch-jobs table, and the operator form."""
    with chromium() as browser:
        async with browser.page() as page:
            await page.goto(f"{stack.ui_url}/deployments/deployment/{adhoc.deployment_id}")
            await page.wait_for_text(["dispatch", adhoc.name, scheduled.name])
            shot = tmp / "deployment-runs.png"
            await page.screenshot(shot)
            keep_artifact(shot)

            # The typed parameters render as a form on the deployment's custom-run page.
            await page.goto(f"{stack.ui_url}/deployments/deployment/{adhoc.deployment_id}/run")
            await page.wait_for_text(
                ["Parameters of one dispatch run", "Max Jobs", "Stop after taking this many"]
            )

            await page.goto(f"{stack.ui_url}/runs/flow-run/{adhoc.id}")
            await page.wait_for_text([adhoc.name, "Task Runs"])
            assert await page.click_text("Task Runs")
            await page.wait_for_text(
                ["quick <- ", "laggard <- ", "broken <- ", "Cancelled", "Failed"]
            )
            shot = tmp / "flow-run-task-runs.png"
            await page.screenshot(shot)
            keep_artifact(shot)

            # The run's Artifacts tab lists its keyed table; the artifact's page shows the rows.
            assert await page.click_text("Artifacts")
            await page.wait_for_text(["dispatch-jobs", "dispatch-progress"])
            artifact = await dispatch_jobs_artifact(client, adhoc)
            await page.goto(f"{stack.ui_url}/artifacts/artifact/{artifact.id}")
            await page.wait_for_text(["dispatch-jobs", job_id, "COMPLETED", "quick", "FAILED"])
            shot = tmp / "dispatch-jobs-artifact.png"
            await page.screenshot(shot)
            keep_artifact(shot)

            # The operator deployment's typed form, and its run under a readable name.
            await page.goto(f"{stack.ui_url}/deployments/deployment/{admin.deployment_id}/run")
            await page.wait_for_text(["One change to the agent registry", "Token Secret"])
            shot = tmp / "agent-admin-form.png"
            await page.screenshot(shot)
            keep_artifact(shot)
            await page.goto(f"{stack.ui_url}/runs/flow-run/{admin.id}")
            await page.wait_for_text([admin.name, "deactivate broken"])


async def test_worker_killed_mid_run_is_crashed_and_its_job_rescued(
    pg_factory: DatabaseFactory, database_url: str
) -> None:
    """kill -9 a worker and its flow run mid-race: the zombie automation marks the run
    Crashed (no heartbeats), the sweep rescues the job once its lease expires, and the next
    dispatch run finishes it. Nothing is left IN_PROGRESS."""
    if "sweep" not in deployable():
        pytest.fail("flows/sweep.py is missing: the rescue half of this test needs it")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    queue = SimulatedQueue(TOKEN)
    farm = AgentFarm()
    farm.add("steady", "slow:delay=600")
    with queue.serve(), farm.serve():
        task = queue.add_task(title="Long one", category="general", payload={"n": 1})
        flow_env = {
            "DATABASE_URL": database_url,
            "REMOTE_QUEUE_URL": queue.url,
            "REMOTE_QUEUE_TOKEN": TOKEN,
            "AGENT_ALLOW_PRIVATE_NETWORKS": "true",
            "DEFAULT_AGENT_TIMEOUT": "900000",
            "JOB_LEASE_SECONDS": "10",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        }
        with prefect_stack(pg_factory.admin, flow_env) as stack:
            stack.start_server()
            stack.cli(
                "agent-dispatch",
                "agents",
                "add",
                "steady",
                farm.url_for("steady"),
                "--category",
                "general",
                "--max-concurrency",
                "2",
            )
            stack.cli("prefect", "work-pool", "create", POOL, "--type", "process")
            stack.cli(
                "prefect",
                "--no-prompt",
                "deploy",
                "--prefect-file",
                "deployments/prefect.yaml",
                "--name",
                "dispatch",
                "--name",
                "sweep",
            )
            stack.cli("python", "-m", "deployments.automations", "--heartbeat-seconds", "30")
            # Only the runs this test starts: no scheduled dispatch or sweep gets in between.
            async with PrefectClient(stack.api_url) as client:
                for name in ("dispatch/dispatch", "sweep/sweep"):
                    dep = await client.read_deployment_by_name(name)
                    stack.cli(
                        "prefect", "deployment", "schedule", "pause", name, str(dep.schedules[0].id)
                    )
            victim = stack.start_worker(POOL, "victim")
            run_id = uuid.UUID(
                re.findall(
                    r"UUID: ([0-9a-f-]{36})",
                    stack.cli(
                        "prefect",
                        "deployment",
                        "run",
                        "dispatch/dispatch",
                        "-p",
                        'params={"max_jobs": 1}',
                    ),
                )[0]
            )

            async with PrefectClient(stack.api_url) as client:

                async def racing() -> bool:
                    return farm.in_flight("steady") == 1

                await eventually(racing, 60, "the agent call to start")

                async def heartbeat() -> list[ReceivedEvent] | None:
                    return (
                        await events_of(
                            client,
                            since,
                            event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                            resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
                        )
                        or None
                    )

                await eventually(heartbeat, 30, "the run's first heartbeat")
                killed = victim.kill_tree()
                assert len(killed) >= 2, "the worker and its flow run process"
                run = await client.read_flow_run(run_id)
                assert run.state_name == "Running"  # the server cannot know yet

                # Another worker takes over; the agent now answers at once.
                farm.set_behaviour("steady", "fast")
                stack.start_worker(POOL, "survivor")
                await asyncio.sleep(11)  # the dead run's job lease (10 s) runs out
                sweep_id = uuid.UUID(
                    re.findall(
                        r"UUID: ([0-9a-f-]{36})",
                        stack.cli("prefect", "deployment", "run", "sweep/sweep"),
                    )[0]
                )
                await finished(client, sweep_id, 90)
                redo_id = uuid.UUID(
                    re.findall(
                        r"UUID: ([0-9a-f-]{36})",
                        stack.cli("prefect", "deployment", "run", "dispatch/dispatch"),
                    )[0]
                )
                redo = await finished(client, redo_id, 90)
                assert redo.state_name == "Completed"

                async def completed() -> bool:
                    return queue.task(task["id"])["status"] == "COMPLETED"

                await eventually(completed, 60, "the rescued job to complete")
                jobs = stack.cli("agent-dispatch", "jobs", "list", "--json")
                assert '"IN_PROGRESS"' not in jobs and '"DISTRIBUTED"' not in jobs, jobs

                crashed = await eventually(
                    lambda: _crashed(client, run_id),
                    150,
                    "the zombie run to be marked Crashed",
                    every=3.0,
                )
                assert "heartbeat" in (crashed.state.message or "")  # type: ignore[union-attr]


async def _crashed(client: PrefectClient, run_id: uuid.UUID) -> FlowRun | None:
    run = await client.read_flow_run(run_id)
    return run if run.state_name == "Crashed" else None
