"""POST /api/runs starts a real dispatch run; the job detail and the stats then tell its story."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from prefect.client.orchestration import get_client

from agent_dispatch.api.runs import camel_doc
from agent_dispatch.cli.main import main
from agent_dispatch.flows.dispatch import dispatch_flow
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.api.conftest import Served

pytestmark = [pytest.mark.postgres, pytest.mark.flow]


def wait_for_jobs(api: Served, status: str, count: int, timeout: float = 120) -> list[Any]:
    deadline = time.monotonic() + timeout
    with api.client() as c:
        while time.monotonic() < deadline:
            items = c.get("/api/jobs", params={"status": status}).json()["items"]
            if len(items) >= count:
                return list(items)
            time.sleep(0.3)
    raise AssertionError(f"fewer than {count} {status} jobs after {timeout} s")


def test_a_run_started_over_http_dispatches_and_the_job_shows_why_and_who(
    api: Served,
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    prefect_harness: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_agent(api.rt, "quick", "fast:delay=0.05")
    add_agent(api.rt, "steady", "fast:delay=0.5")
    add_agent(api.rt, "coder", "fast", categories=["code"])
    tasks = [queue.add_task(title=f"job {i}") for i in range(3)]
    with api.client() as c:
        r = c.post("/api/runs", json={"maxJobs": 3})
        assert r.status_code == 202, r.text
        started = r.json()
        assert started["via"] == "this process"
        assert c.post("/api/runs", json={"maxJobs": 0}).status_code == 422

        done = wait_for_jobs(api, "COMPLETED", 3)
        assert {j["queueTaskId"] for j in done} == {t["id"] for t in tasks}
        assert {j["flowRunId"] for j in done} == {started["flowRunId"]}
        assert all(j["winner"] == "quick" and j["winnerLatencyMs"] > 0 for j in done)

        job = c.get(f"/api/jobs/{tasks[0]['id']}").json()
        attempt = job["distributions"][0]
        runs = {a["agent"]: a for a in attempt["agents"]}
        assert runs["quick"]["status"] == "COMPLETED" and runs["quick"]["won"]
        assert runs["steady"]["status"] in ("CANCELLED", "COMPLETED") and not runs["steady"]["won"]
        reasons = {d["agentName"]: d for d in attempt["decisions"]}
        assert reasons["coder"]["eligible"] is False and "category" in reasons["coder"]["reason"]
        assert reasons["quick"]["chosen"] is True
        assert job["winner"] == "quick" and job["result"] is not None

        api_stats = c.get("/api/stats").json()
        hour_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
        recent = c.get("/api/stats", params={"since": hour_ago})
        assert recent.status_code == 200, recent.text
        assert recent.json()["jobs"]["finished"] == 3
    assert main(["stats", "--json"]) == 0  # the CLI, in this process, on the same database
    cli_stats = camel_doc(json.loads(capsys.readouterr().out))
    for doc in (api_stats, cli_stats):
        # Read a moment apart: the window's end, and the per-hour rates over it, differ.
        doc["window"].pop("end")
        for agent in doc["agents"]:
            agent.pop("throughputPerHour")
    assert api_stats == cli_stats
    assert api_stats["jobs"]["finished"] == 3 and api_stats["jobs"]["completed"] == 3


async def test_a_run_goes_through_the_dispatch_deployment_when_there_is_one(
    api: Served, prefect_harness: None
) -> None:
    deployment = await dispatch_flow.ato_deployment("dispatch")
    deployment_id = await deployment.aapply()
    try:
        with api.client() as c:
            started = c.post("/api/runs", json={"maxJobs": 5}).json()
        assert started["via"] == "deployment"
        async with get_client() as client:
            run = await client.read_flow_run(started["flowRunId"])
        assert run.deployment_id == deployment_id
        assert run.parameters == {"params": {"max_jobs": 5, "page_size": None}}
    finally:
        async with get_client() as client:
            await client.delete_deployment(deployment_id)
