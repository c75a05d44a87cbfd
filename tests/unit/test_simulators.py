"""The simulators over real loopback HTTP: queue rules, faults, every agent behaviour, the CLI."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import itertools
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_dispatch.simulators import (
    AgentFarm,
    Behaviour,
    SimulatedQueue,
    behaviour,
    demo_scenario,
    parse_behaviour,
    serve_in_thread,
)

TOKEN = "t0ken"
ROOT = Path(__file__).resolve().parents[2]
_numbers = itertools.count(1)


def wait_until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# Server


def test_serve_in_thread_starts_quickly_on_a_free_port_and_stops() -> None:
    queue = SimulatedQueue(token=None)
    started = time.monotonic()
    with serve_in_thread(queue.app) as running:
        assert time.monotonic() - started < 1.0
        assert running.url == f"http://127.0.0.1:{running.port}"
        assert httpx.get(running.url + "/tasks").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(running.url + "/tasks")


def test_serve_in_thread_on_a_fixed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve_in_thread(SimulatedQueue(token=None).app, port) as running:
        assert running.port == port
        assert httpx.get(f"http://127.0.0.1:{port}/tasks").json() == {
            "tasks": [],
            "nextCursor": None,
        }


# Queue


@pytest.fixture
def queue() -> Iterator[SimulatedQueue]:
    queue = SimulatedQueue(token=TOKEN)
    with queue.serve():
        yield queue


@pytest.fixture
def client(queue: SimulatedQueue) -> Iterator[httpx.Client]:
    assert queue.url is not None
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=queue.url, headers=headers, timeout=5) as client:
        yield client


def move(
    client: httpx.Client, task_id: str, expected: str, status: str, **extra: Any
) -> httpx.Response:
    return client.patch(
        f"/tasks/{task_id}", json={"status": status, "expectedStatus": expected, **extra}
    )


def test_paging_is_oldest_first_and_the_cursor_survives_status_changes(
    queue: SimulatedQueue, client: httpx.Client
) -> None:
    ids = [queue.add_task()["id"] for _ in range(4)]
    oldest = queue.add_task(created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))["id"]
    assert ids == ["task-0001", "task-0002", "task-0003", "task-0004"] and oldest == "task-0005"

    first = client.get("/tasks", params={"limit": 2}).json()
    assert [t["id"] for t in first["tasks"]] == [oldest, ids[0]]
    assert isinstance(first["nextCursor"], str)
    # One task already seen and one not yet seen leave OPEN: nothing shifts or repeats.
    assert move(client, oldest, "OPEN", "DISTRIBUTED").status_code == 200
    assert move(client, ids[1], "OPEN", "DISTRIBUTED").status_code == 200
    second = client.get("/tasks", params={"limit": 2, "cursor": first["nextCursor"]}).json()
    assert [t["id"] for t in second["tasks"]] == ids[2:]
    assert second["nextCursor"] is None

    taken = client.get("/tasks", params={"status": "DISTRIBUTED"}).json()
    assert [t["id"] for t in taken["tasks"]] == [oldest, ids[1]]
    assert queue.counts()["OPEN"] == 3 and queue.counts()["DISTRIBUTED"] == 2


def test_list_rejects_bad_parameters(queue: SimulatedQueue, client: httpx.Client) -> None:
    assert client.get("/tasks", params={"cursor": "nope"}).status_code == 400
    assert client.get("/tasks", params={"limit": 0}).status_code == 400
    assert client.get("/tasks", params={"limit": 501}).status_code == 400
    assert client.get("/tasks", params={"status": "DONE"}).status_code == 400


def test_status_changes_follow_the_contract(queue: SimulatedQueue, client: httpx.Client) -> None:
    task = queue.add_task(title="t")["id"]
    assert move(client, task, "DISTRIBUTED", "IN_PROGRESS").json() == {"currentStatus": "OPEN"}
    assert move(client, task, "OPEN", "IN_PROGRESS").status_code == 422
    assert move(client, task, "OPEN", "COMPLETED").status_code == 422
    assert client.patch(f"/tasks/{task}", json={"status": "DONE"}).status_code == 400
    assert move(client, "missing", "OPEN", "DISTRIBUTED").status_code == 404

    assert move(client, task, "OPEN", "DISTRIBUTED").json()["status"] == "DISTRIBUTED"
    assert move(client, task, "OPEN", "DISTRIBUTED").status_code == 409
    assert move(client, task, "DISTRIBUTED", "IN_PROGRESS").status_code == 200
    done = move(client, task, "IN_PROGRESS", "COMPLETED", result={"x": 1}, agentId="a1")
    assert done.status_code == 200
    assert done.json()["result"] == {"x": 1} and done.json()["agentId"] == "a1"
    assert move(client, task, "COMPLETED", "FAILED", error="late").status_code == 422
    assert move(client, task, "IN_PROGRESS", "FAILED").json() == {"currentStatus": "COMPLETED"}

    assert queue.task(task)["result"] == {"x": 1}
    assert queue.finished_count(task) == 1
    codes = [p.status_code for p in queue.patches]
    assert codes == [409, 422, 422, 400, 404, 200, 409, 200, 200, 422, 409]  # fmt: skip
    assert queue.patches[-3].body["agentId"] == "a1"
    assert client.get(f"/tasks/{task}").json()["status"] == "COMPLETED"
    assert client.get("/tasks/missing").status_code == 404


def test_terminal_error_is_stored_and_open_may_fail(
    queue: SimulatedQueue, client: httpx.Client
) -> None:
    task = queue.add_task()["id"]
    assert move(client, task, "OPEN", "FAILED", error="bad item").status_code == 200
    assert queue.task(task)["error"] == "bad item"
    assert queue.tasks_in("FAILED")[0]["id"] == task
    assert move(client, task, "FAILED", "OPEN").status_code == 422


def test_bearer_token_is_required(queue: SimulatedQueue, client: httpx.Client) -> None:
    assert queue.url is not None
    assert httpx.get(queue.url + "/tasks").status_code == 401
    wrong = {"Authorization": "Bearer other"}
    assert httpx.get(queue.url + "/tasks", headers=wrong).status_code == 401
    assert client.get("/tasks").status_code == 200
    queue.set_token("other")
    assert client.get("/tasks").status_code == 401
    change = {"status": "DISTRIBUTED", "expectedStatus": "OPEN"}
    assert httpx.patch(queue.url + "/tasks/x", headers=wrong, json=change).status_code == 404
    assert [(r.status_code, r.authorization) for r in queue.requests] == [
        (401, False),
        (401, True),
        (200, True),
        (401, True),
        (404, True),
    ]


def test_fail_next_with_retry_after_then_recovers(
    queue: SimulatedQueue, client: httpx.Client
) -> None:
    task = queue.add_task()["id"]
    queue.fail_next(2, status=429, retry_after=0.5, method="GET")
    assert move(client, task, "OPEN", "DISTRIBUTED").status_code == 200  # PATCH is not hit
    for _ in range(2):
        refused = client.get("/tasks")
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "0.5"
    assert client.get("/tasks").status_code == 200

    queue.fail_next(1)
    unavailable = move(client, task, "DISTRIBUTED", "IN_PROGRESS")
    assert unavailable.status_code == 503 and "Retry-After" not in unavailable.headers
    assert queue.task(task)["status"] == "DISTRIBUTED"
    assert queue.patches[-1].status_code == 503


def test_delay_and_malformed_faults(queue: SimulatedQueue, client: httpx.Client) -> None:
    queue.add_task()
    queue.delay_next(1, 0.3)
    started = time.monotonic()
    assert client.get("/tasks").status_code == 200
    assert time.monotonic() - started >= 0.3

    queue.malformed_next(1)
    queue.malformed_next(1, "shape")
    text = client.get("/tasks")
    assert text.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        text.json()
    assert "tasks" not in client.get("/tasks").json()
    assert len(client.get("/tasks").json()["tasks"]) == 1


def test_raw_items_are_served_as_given_and_patchable(
    queue: SimulatedQueue, client: httpx.Client
) -> None:
    queue.add_task()
    queue.add_raw({"id": "bad-1", "category": "x", "skillLevel": 9})  # no title, no status
    queue.add_raw({"title": 5, "tags": "no"})  # no id at all
    queue.add_raw({"id": "paused-1", "status": "PAUSED", "title": "t"})
    listed = client.get("/tasks").json()["tasks"]
    assert listed[1] == {"id": "bad-1", "category": "x", "skillLevel": 9}
    assert listed[2] == {"title": 5, "tags": "no"}
    assert len(listed) == 3

    failed = move(client, "bad-1", "OPEN", "FAILED", error="invalid item")
    assert failed.status_code == 200 and failed.json()["status"] == "FAILED"
    assert queue.task("bad-1")["error"] == "invalid item"
    assert client.get("/tasks", params={"status": "FAILED"}).json()["tasks"][0]["id"] == "bad-1"
    assert queue.counts()["PAUSED"] == 1


def test_queue_admin_state_needs_no_token(queue: SimulatedQueue, client: httpx.Client) -> None:
    assert queue.url is not None
    task = queue.add_task()["id"]
    queue.add_task()
    move(client, task, "OPEN", "DISTRIBUTED")
    move(client, task, "OPEN", "DISTRIBUTED")
    state = httpx.get(queue.url + "/_sim/state").json()
    assert state["counts"]["OPEN"] == 1 and state["counts"]["DISTRIBUTED"] == 1
    assert state["patches"] == {task: 2}
    assert state["finishedMoreThanOnce"] == []
    assert state["requests"] == 2  # admin calls are not logged


# Agents


@pytest.fixture(scope="module")
def farm() -> Iterator[AgentFarm]:
    farm = AgentFarm()
    with farm.serve():
        yield farm


def new_agent(farm: AgentFarm, kind: str, token: str | None = None, **params: Any) -> str:
    name = f"{kind}-{next(_numbers)}"
    farm.add(name, behaviour(kind, **params), token=token)
    return name


def execute(
    farm: AgentFarm, name: str, dist: str = "d1", timeout: float = 5.0, **headers: str
) -> httpx.Response:
    body = {
        "jobId": "job-1",
        "distributionId": dist,
        "agentId": name,
        "title": "Do it",
        "category": "c",
        "payload": {"n": 1},
    }
    sent = {"Idempotency-Key": f"{dist}:{name}", **headers}
    return httpx.post(farm.url_for(name) + "/execute", json=body, headers=sent, timeout=timeout)


def test_fast_agent_completes_with_its_name_job_and_score(farm: AgentFarm) -> None:
    name = new_agent(farm, "fast", score=0.7)
    answer = execute(farm, name)
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "COMPLETED",
        "result": {"agent": name, "jobId": "job-1", "summary": f"{name} handled Do it"},
        "score": 0.7,
    }
    [call] = farm.calls_for(name)
    assert (call.path, call.idempotency_key, call.job_id, call.distribution_id) == (
        "/execute",
        f"d1:{name}",
        "job-1",
        "d1",
    )
    assert farm.executions_for(f"d1:{name}") == 1


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("failing", 200, {"status": "FAILED", "error": "simulated agent failure"}),
        ("error500", 500, {"error": "simulated agent failure"}),
        ("wrong_shape", 200, {"foo": 1}),
    ],
)
def test_failing_answers(farm: AgentFarm, kind: str, status: int, body: Any) -> None:
    answer = execute(farm, new_agent(farm, kind))
    assert (answer.status_code, answer.json()) == (status, body)


def test_non_json_and_custom_wrong_shape(farm: AgentFarm) -> None:
    answer = execute(farm, new_agent(farm, "non_json"))
    assert answer.status_code == 200 and answer.text == "oops"
    assert answer.headers["content-type"].startswith("text/plain")
    odd = execute(farm, new_agent(farm, "wrong_shape", body={"status": "DONE"}))
    assert odd.json() == {"status": "DONE"}


def test_contract_violations_by_the_client_are_refused(farm: AgentFarm) -> None:
    name = new_agent(farm, "fast")
    url = farm.url_for(name) + "/execute"
    assert httpx.post(url, json={"jobId": "j"}).status_code == 400  # no Idempotency-Key
    assert httpx.post(url, json={"jobId": "j"}, headers={"Idempotency-Key": "k"}).status_code == 422
    assert execute(farm, name, **{"Idempotency-Key": "other:key"}).status_code == 422
    assert httpx.get(farm.url_for("nobody") + "/health").status_code == 404
    assert httpx.get(farm.url_for(name) + "/execute").status_code == 405


def test_agent_token(farm: AgentFarm) -> None:
    name = new_agent(farm, "fast", token="secret")
    assert execute(farm, name).status_code == 401
    assert execute(farm, name, Authorization="Bearer secret").status_code == 200
    assert [c.authorization for c in farm.calls_for(name)] == [False, True]
    farm.require_token(name, None)
    assert execute(farm, name).status_code == 200


def test_slow_agent_stops_early_when_cancelled(farm: AgentFarm) -> None:
    name = new_agent(farm, "slow")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        pending = pool.submit(execute, farm, name, "dist-slow")
        wait_until(lambda: farm.in_flight(name) == 1)
        cancel = {"jobId": "job-1", "distributionId": "dist-slow"}
        assert httpx.post(farm.url_for(name) + "/cancel", json=cancel).status_code == 200
        answer = pending.result(timeout=2)
    assert time.monotonic() - started < 2
    assert answer.json() == {"status": "FAILED", "error": "cancelled"}
    [record] = farm.cancels[-1:]
    assert (record.agent, record.distribution_id, record.while_open) == (name, "dist-slow", True)
    assert httpx.post(farm.url_for(name) + "/cancel", json={}).status_code == 422
    late = httpx.post(farm.url_for(name) + "/cancel", json={"distributionId": "dist-slow"})
    assert late.status_code == 200 and farm.cancels[-1].while_open is False


def test_agent_that_cannot_cancel(farm: AgentFarm) -> None:
    name = new_agent(farm, "fast", cancel_status=405)
    assert (
        httpx.post(farm.url_for(name) + "/cancel", json={"distributionId": "d"}).status_code == 405
    )
    assert httpx.post(farm.url_for(name) + "/tasks/t1/cancel").status_code == 405
    assert [c.status_code for c in farm.cancels if c.agent == name] == [405, 405]


def test_hanging_agent_answers_nothing_and_notices_the_client_leave(farm: AgentFarm) -> None:
    name = new_agent(farm, "hanging")
    with pytest.raises(httpx.ReadTimeout):
        execute(farm, name, timeout=0.3)
    wait_until(lambda: farm.in_flight(name) == 0)
    assert farm.peak_in_flight(name) == 1


def test_drip_agent_never_finishes_its_body(farm: AgentFarm) -> None:
    name = new_agent(farm, "drip", interval=0.01)
    received = b""
    with httpx.Client(timeout=2) as client:
        body = {"jobId": "j", "distributionId": "d", "agentId": name}
        body |= {"title": "t", "category": "c", "payload": {}}
        headers = {"Idempotency-Key": f"d:{name}"}
        with client.stream(
            "POST", farm.url_for(name) + "/execute", json=body, headers=headers
        ) as r:
            assert r.status_code == 200 and "content-length" not in r.headers
            stop = time.monotonic() + 0.5
            for chunk in r.iter_bytes():
                received += chunk
                # Half a second of dripping, and more than its opening (a loaded machine may
                # deliver nothing else in that half second).
                if time.monotonic() > stop and len(received) > 40:
                    break
    assert received.startswith(b'{"status": "COMPLETED", "result": "')
    assert len(received) > 20
    wait_until(lambda: farm.in_flight(name) == 0)


def test_huge_agent_streams_lazily_and_stops_when_the_client_leaves(farm: AgentFarm) -> None:
    name = new_agent(farm, "huge")  # 1 GiB, of which only 1 MiB is read
    body = {"jobId": "j", "distributionId": "d", "agentId": name}
    body |= {"title": "t", "category": "c", "payload": {}}
    headers = {"Idempotency-Key": f"d:{name}"}
    read = 0
    url = farm.url_for(name) + "/execute"
    with (
        httpx.Client(timeout=5) as client,
        client.stream("POST", url, json=body, headers=headers) as r,
    ):
        assert "content-length" not in r.headers
        for chunk in r.iter_bytes():
            read += len(chunk)
            if read >= 1 << 20:
                break
    wait_until(lambda: farm.in_flight(name) == 0)
    assert farm.streamed_bytes(name) < 64 << 20  # not the whole GiB into a closed socket

    small = new_agent(farm, "huge", size=100_000, chunk_size=4096)
    whole = execute(farm, small)
    assert len(whole.content) == 100_000
    assert whole.json()["status"] == "COMPLETED"


def test_async_poll_sequence(farm: AgentFarm) -> None:
    name = new_agent(farm, "async_poll", times=2, poll_after_ms=10)
    accepted = execute(farm, name)
    assert accepted.status_code == 202
    task_id = accepted.json()["taskId"]
    assert accepted.json() == {"status": "WORKING", "taskId": task_id, "pollAfterMs": 10}
    assert execute(farm, name).json()["taskId"] == task_id  # same Idempotency-Key, same task
    poll = farm.url_for(name) + f"/tasks/{task_id}"
    statuses = [httpx.get(poll).json()["status"] for _ in range(3)]
    assert statuses == ["WORKING", "WORKING", "COMPLETED"]
    assert httpx.get(poll).json()["result"]["agent"] == name
    assert httpx.get(farm.url_for(name) + "/tasks/nope").status_code == 404

    other = execute(farm, name, dist="d2").json()["taskId"]
    assert other != task_id
    assert httpx.post(farm.url_for(name) + f"/tasks/{other}/cancel").status_code == 200
    assert httpx.get(farm.url_for(name) + f"/tasks/{other}").json() == {
        "status": "FAILED",
        "error": "cancelled",
    }
    assert (farm.cancels[-1].task_id, farm.cancels[-1].while_open) == (other, True)
    assert httpx.post(farm.url_for(name) + "/tasks/nope/cancel").status_code == 404


def test_rate_limited_counts_per_idempotency_key(farm: AgentFarm) -> None:
    name = new_agent(farm, "rate_limited", times=2)
    first = [execute(farm, name, dist="a") for _ in range(3)]
    assert [r.status_code for r in first] == [429, 429, 200]
    assert first[0].headers["Retry-After"] == "0.1"
    assert execute(farm, name, dist="b").status_code == 429
    assert farm.executions_for(f"a:{name}") == 3 and farm.executions_for(f"b:{name}") == 1


def test_unavailable_then_ok(farm: AgentFarm) -> None:
    name = new_agent(farm, "unavailable_then_ok", times=1)
    refused = execute(farm, name)
    assert refused.status_code == 503 and "Retry-After" not in refused.headers
    assert execute(farm, name).json()["status"] == "COMPLETED"


def test_flaky_is_reproducible_from_its_seed(farm: AgentFarm) -> None:
    first = new_agent(farm, "flaky", probability=0.5, seed=3)
    second = new_agent(farm, "flaky", probability=0.5, seed=3)
    codes = [
        [execute(farm, a, dist=str(i)).status_code for i in range(12)] for a in (first, second)
    ]
    assert codes[0] == codes[1] and set(codes[0]) == {200, 500}
    never = new_agent(farm, "flaky", probability=0.0)
    assert execute(farm, never).status_code == 200
    always = new_agent(farm, "flaky", probability=1.0, fail_as="failing")
    assert execute(farm, always).json()["status"] == "FAILED"


def test_health_reports_load_and_unhealthy(farm: AgentFarm) -> None:
    # Calls of 2 s: the three must still be in flight when /health is read on a loaded machine.
    name = new_agent(farm, "fast", delay=2, capacity=4)
    assert httpx.get(farm.url_for(name) + "/health").json() == {
        "status": "ok",
        "load": 0.0,
        "capacity": 4,
    }
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(execute, farm, name, f"d{i}") for i in range(3)]
        wait_until(lambda: farm.in_flight(name) == 3)
        busy = httpx.get(farm.url_for(name) + "/health").json()
        assert busy == {"status": "ok", "load": 0.75, "capacity": 1}
        assert all(r.result().status_code == 200 for r in runs)
    wait_until(lambda: farm.in_flight(name) == 0)  # counted down just after the answer is sent
    assert farm.peak_in_flight(name) == 3
    sick = new_agent(farm, "unhealthy")
    assert httpx.get(farm.url_for(sick) + "/health").status_code == 503
    assert execute(farm, sick).status_code == 200


def test_farm_admin_calls(farm: AgentFarm) -> None:
    name = new_agent(farm, "rate_limited", times=1)
    execute(farm, name)
    execute(farm, name)
    summary = httpx.get(farm.url_for(name).split("/agents/")[0] + "/_sim/calls").json()
    assert summary["executions"][f"d1:{name}"] == 2
    assert summary["byAgent"][name] == 2 and summary["peakInFlight"][name] == 1


def test_behaviour_specs() -> None:
    assert parse_behaviour("slow") == Behaviour(kind="slow", delay=30.0)
    parsed = parse_behaviour("flaky:probability=0.3:seed=7:fail_as=non_json:retry_after=null")
    assert (parsed.probability, parsed.seed, parsed.fail_as, parsed.retry_after) == (
        0.3,
        7,
        "non_json",
        None,
    )
    with pytest.raises(ValueError, match="unknown behaviour"):
        behaviour("sleepy")
    with pytest.raises(ValueError, match="param=value"):
        parse_behaviour("slow:delay")


def test_demo_scenario_has_the_promised_mix() -> None:
    scenario = demo_scenario()
    names = {spec.name for spec in scenario.agents}
    assert names == {"fast-a", "fast-b", "slow", "failing", "hanging", "async-poll"}
    assert set(scenario.farm.names) == names

    def servers(task: dict[str, Any]) -> set[str]:
        return {
            a.name
            for a in scenario.agents
            if task.get("category") in a.categories
            and task.get("skillLevel", 1) <= a.skill_level
            and set(task.get("tags", [])) <= set(a.tags)
        }

    valid = [t for t in scenario.tasks if "title" in t]
    assert len({t["category"] for t in valid}) == 4  # three served, one nobody serves
    assert sum(len(servers(t)) >= 2 for t in valid) >= 4
    assert [t["title"] for t in valid if not servers(t)] == ["Review the contract"]
    assert sum("expiresAt" in t for t in valid) == 1
    [bad] = [t for t in scenario.tasks if "title" not in t]
    assert bad["skillLevel"] == 9 and scenario.queue.task(bad["id"]) == bad


# The standalone process


def test_standalone_process_serves_until_terminated() -> None:
    command = [sys.executable, "-m", "agent_dispatch.simulators", "--token", TOKEN, "--jobs", "3"]
    command += ["--agents", "fast1=fast,slow1=slow:delay=5", "--categories", "a,b", "--tags", "x"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 10)
        assert ready, "no JSON line from the simulators process"
        info = json.loads(process.stdout.readline())
        headers = {"Authorization": f"Bearer {TOKEN}"}
        tasks = httpx.get(info["queue_url"] + "/tasks", headers=headers).json()["tasks"]
        assert [(t["category"], t["tags"]) for t in tasks] == [
            ("a", ["x"]),
            ("b", ["x"]),
            ("a", ["x"]),
        ]
        assert set(info["agents"]) == {"fast1", "slow1"}
        fast_url = info["agents"]["fast1"]
        body = {"jobId": tasks[0]["id"], "distributionId": "d", "agentId": "fast1"}
        body |= {"title": "t", "category": "a", "payload": {}}
        done = httpx.post(fast_url + "/execute", json=body, headers={"Idempotency-Key": "d:fast1"})
        assert done.json()["status"] == "COMPLETED"
        state = httpx.get(info["queue_url"] + "/_sim/state").json()
        assert state["counts"]["OPEN"] == 3
        calls = httpx.get(fast_url.split("/agents/")[0] + "/_sim/calls").json()
        assert calls["executions"] == {"d:fast1": 1}
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


async def test_a_client_gone_before_its_body_arrived_ends_quietly() -> None:
    # A dispatcher stopping a losing call mid-send: the body never comes. uvicorn printed an
    # "Exception in ASGI application" traceback for each such call.
    from starlette.requests import Request
    from starlette.types import Message, Receive, Scope, Send

    from agent_dispatch.simulators.asgi import observed

    async def reads_its_body(scope: Scope, receive: Receive, send: Send) -> None:
        await Request(scope, receive).body()

    ended: list[int | None] = []
    app = observed(reads_its_body, on_end=lambda _scope, status: ended.append(status))

    async def gone() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise AssertionError(f"nothing should be sent: {message}")

    await app({"type": "http", "method": "POST", "path": "/", "headers": []}, gone, send)

    assert ended == [None]
