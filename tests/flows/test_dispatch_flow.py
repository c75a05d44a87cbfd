"""The dispatch flow end to end: real Prefect, real PostgreSQL, loopback queue and agents."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Agent, Job, JobDistributionAgent, QueueRejection
from agent_dispatch.flows.dispatch import DispatchParams, DispatchSummary, dispatch_flow
from agent_dispatch.services.cancel import cancel_job
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue

pytestmark = [pytest.mark.flow]


def job_of(rt: Runtime, queue_task_id: str) -> Job:
    with rt.uow() as uow:
        job = uow.jobs.find(queue_task_id)
        assert job is not None, f"no local job for {queue_task_id}"
        _ = [d.agents for d in job.distributions]  # load while the session is open
        return job


def rows_by_agent(job: Job) -> dict[str, JobDistributionAgent]:
    return {r.agent_name: r for d in job.distributions for r in d.agents}


def line(summary: DispatchSummary, qid: str) -> str:
    return next(j.outcome for j in summary.jobs if j.queue_task_id == qid)


def agent(rt: Runtime, name: str) -> Agent:
    with rt.uow() as uow:
        found = uow.agents.get_by_name(name)
        assert found is not None
        return found


async def test_fastest_agent_wins_losers_cancelled_and_stats_updated(
    rt: Runtime, queue: SimulatedQueue, farm: AgentFarm, add_agent: Callable[..., str]
) -> None:
    fast_id = add_agent("fast", "fast:delay=0.05")
    add_agent("slow", "slow:delay=20")
    add_agent("hanging", "hanging")
    task = queue.add_task(title="Summarise", category="general", payload={"text": "hi"})

    summary = await dispatch_flow(DispatchParams())

    assert line(summary, task["id"]) == "COMPLETED"
    job = job_of(rt, task["id"])
    assert job.status == "COMPLETED"
    assert job.selected_agent_id == fast_id
    assert job.result is not None and "fast" in str(job.result)
    rows = rows_by_agent(job)
    assert rows["fast"].status == "COMPLETED" and rows["fast"].won
    for loser in ("slow", "hanging"):
        assert rows[loser].status == "CANCELLED"
        assert rows[loser].failure_kind == "cancelled"
    # The losers were told to stop while their requests were still open.
    cancelled = {c.agent for c in farm.cancels if c.while_open}
    assert cancelled == {"slow", "hanging"}
    # The queue saw the whole walk once, and the result with the winner's id.
    remote = queue.task(task["id"])
    assert remote["status"] == "COMPLETED"
    assert remote["agentId"] == fast_id
    assert remote["result"] == job.result
    walked = [p.body["status"] for p in queue.patches if p.task_id == task["id"]]
    assert walked == ["DISTRIBUTED", "IN_PROGRESS", "COMPLETED"]
    assert queue.finish_attempts(task["id"]) == 1  # every terminal PATCH, accepted or not
    # Statistics: the winner gains, the losers are cancelled, not failed.
    assert (agent(rt, "fast").wins, agent(rt, "fast").successes) == (1, 1)
    for loser in ("slow", "hanging"):
        a = agent(rt, loser)
        assert (a.cancelled, a.failures, a.successes) == (1, 0, 0)
        assert a.reputation == 0.5
    # Prefect shows one task run per agent call; the losers' runs ended Cancelled.
    run_id = job.distributions[0].flow_run_id
    assert run_id is not None
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    states = {r.name.split(" <- ")[0]: r.state_type.value for r in runs if " <- " in r.name}
    assert states == {"fast": "COMPLETED", "slow": "CANCELLED", "hanging": "CANCELLED"}


async def test_bad_answers_fail_only_their_agent(
    rt: Runtime, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("failing", "failing")
    add_agent("error500", "error500")
    add_agent("non-json", "non_json")
    add_agent("wrong-shape", "wrong_shape")
    add_agent("steady", "fast:delay=0.8")
    task = queue.add_task(title="t", category="general", maxAgents=5)

    await dispatch_flow(DispatchParams())

    job = job_of(rt, task["id"])
    rows = rows_by_agent(job)
    assert job.status == "COMPLETED"
    assert rows["steady"].won
    kinds = {name: (r.status, r.failure_kind) for name, r in rows.items() if name != "steady"}
    assert kinds == {
        "failing": ("FAILED", "agent_failed"),
        "error500": ("FAILED", "http_error"),
        "non-json": ("FAILED", "invalid_answer"),
        "wrong-shape": ("FAILED", "invalid_answer"),
    }
    for name in kinds:
        assert "agent " + name in (rows[name].error or "")  # errors name the agent, not its id


async def test_every_agent_failing_fails_the_job_naming_each(
    make_runtime: Callable[..., Runtime], queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    # 2 s: the hanging agent must time out, and the one answering 500 must be seen to fail
    # first even on a loaded machine (its deadline starts before its task run is created).
    rt = make_runtime(default_agent_timeout=2000)
    add_agent("failing", "failing")
    add_agent("error500", "error500")
    add_agent("hanging", "hanging")
    task = queue.add_task(title="t", category="general")

    summary = await dispatch_flow(DispatchParams())

    assert line(summary, task["id"]) == "FAILED"
    job = job_of(rt, task["id"])
    assert job.status == "FAILED"
    assert job.error is not None
    for part in ("failing: FAILED", "error500: FAILED", "hanging: TIMEOUT"):
        assert part in job.error
    assert rows_by_agent(job)["hanging"].failure_kind == "timeout"
    remote = queue.task(task["id"])
    assert remote["status"] == "FAILED"
    assert "hanging: TIMEOUT" in remote["error"]
    assert agent(rt, "hanging").timeouts == 1


async def test_accepted_then_polled_and_rate_limited_retries_share_the_key(
    rt: Runtime, queue: SimulatedQueue, farm: AgentFarm, add_agent: Callable[..., str]
) -> None:
    add_agent("poller", "async_poll:times=2:poll_after_ms=50", categories=("poll",))
    add_agent("limited", "rate_limited:times=2:retry_after=0.05", categories=("limited",))
    polled = queue.add_task(title="p", category="poll")
    limited = queue.add_task(title="l", category="limited")

    await dispatch_flow(DispatchParams())

    job = job_of(rt, polled["id"])
    row = rows_by_agent(job)["poller"]
    assert job.status == "COMPLETED" and row.won
    assert row.remote_task_id is not None
    assert len([c for c in farm.calls_for("poller") if c.path.startswith("/tasks/")]) >= 3
    job = job_of(rt, limited["id"])
    row = rows_by_agent(job)["limited"]
    assert job.status == "COMPLETED"
    assert row.attempts == 3
    assert row.idempotency_key == f"{job.distributions[0].id}:{row.agent_id}"
    assert farm.executions_for(row.idempotency_key) == 3


async def test_retries_are_bounded_by_execution_retry_count(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    rt = make_runtime(execution_retry_count=1)
    add_agent("limited", "rate_limited:times=5:retry_after=0.05")
    task = queue.add_task(title="t", category="general")

    await dispatch_flow(DispatchParams())

    row = rows_by_agent(job_of(rt, task["id"]))["limited"]
    assert (row.status, row.failure_kind, row.attempts) == ("FAILED", "http_error", 2)
    assert farm.executions_for(row.idempotency_key) == 2


async def test_bad_queue_items_are_rejected_alone(
    rt: Runtime, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("fast", "fast")
    good = queue.add_task(title="good", category="general")
    queue.add_raw(
        {
            "id": "bad-1",
            "category": "general",
            "skillLevel": 9,
            "status": "OPEN",
            "createdAt": "2026-01-01T00:00:00Z",
        }
    )
    queue.add_raw(
        {
            "title": "no id",
            "category": "general",
            "status": "OPEN",
            "createdAt": "2026-01-01T00:00:00Z",
        }
    )
    good2 = queue.add_task(title="good too", category="general")

    summary = await dispatch_flow(DispatchParams())

    assert summary.rejected == 2
    assert line(summary, good["id"]) == "COMPLETED"
    assert line(summary, good2["id"]) == "COMPLETED"
    bad = queue.task("bad-1")
    assert bad["status"] == "FAILED"
    assert "title" in bad["error"] and "skillLevel" in bad["error"]
    with rt.uow() as uow:
        rejections = uow.session.query(QueueRejection).all()
        assert sorted(r.queue_task_id or "-" for r in rejections) == ["-", "bad-1"]
        assert [r.reported for r in rejections if r.queue_task_id] == [True]


async def test_expired_job_is_never_dispatched(
    rt: Runtime, queue: SimulatedQueue, farm: AgentFarm, add_agent: Callable[..., str]
) -> None:
    add_agent("fast", "fast")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    task = queue.add_task(title="late", category="general", expiresAt=past)

    summary = await dispatch_flow(DispatchParams())

    assert line(summary, task["id"]) == "EXPIRED"
    assert job_of(rt, task["id"]).status == "EXPIRED"
    assert job_of(rt, task["id"]).distributions == []
    assert queue.task(task["id"])["status"] == "EXPIRED"
    assert farm.calls_for("fast") == []


async def test_job_nobody_can_serve_stays_open(
    rt: Runtime, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("generalist", "fast", categories=("general",), tags=("en",), skill_level=2)
    wrong_tag = queue.add_task(title="t", category="general", tags=["fr"])
    too_hard = queue.add_task(title="t", category="general", skillLevel=4)

    summary = await dispatch_flow(DispatchParams())

    for task, why in ((wrong_tag, "missing tags fr"), (too_hard, "skill level 2 < required 4")):
        assert line(summary, task["id"]) == "UNSERVED"
        job = job_of(rt, task["id"])
        assert job.status == "OPEN" and job.lease_token is None
        assert why in (job.match_summary or "")
        assert queue.task(task["id"])["status"] == "OPEN"
        assert [p for p in queue.patches if p.task_id == task["id"]] == []


async def test_max_agents_from_the_task_overrides_the_default(
    make_runtime: Callable[..., Runtime], queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    # Without exploration the order is the posterior mean, whose prior is the agent's record:
    # a long good record outranks one lucky success and an unknown newcomer.
    rt = make_runtime(ranking_explore=False)
    add_agent("veteran", "fast", runs=100, successes=95, failures=5, reputation=0.9)
    add_agent("lucky", "fast", runs=1, successes=1, reputation=0.55)
    add_agent("newcomer", "fast")
    add_agent("poor", "fast", runs=50, successes=10, failures=40, reputation=0.2)
    two = queue.add_task(title="two", category="general", maxAgents=2)
    default = queue.add_task(title="default", category="general")

    await dispatch_flow(DispatchParams())

    assert sorted(rows_by_agent(job_of(rt, two["id"]))) == ["lucky", "veteran"]
    assert sorted(rows_by_agent(job_of(rt, default["id"]))) == ["lucky", "newcomer", "veteran"]
    decisions = job_of(rt, two["id"]).distributions[0].decisions
    poor = next(d for d in decisions if d["agent_name"] == "poor")
    assert not poor["chosen"] and "only top 2" in poor["reason"]


async def test_operator_cancel_stops_agents_and_tells_the_queue(
    rt: Runtime, queue: SimulatedQueue, farm: AgentFarm, add_agent: Callable[..., str]
) -> None:
    add_agent("slow-1", "slow:delay=30")
    add_agent("poller", "async_poll:times=1000:poll_after_ms=100")
    task = queue.add_task(title="long", category="general")

    run = asyncio.create_task(dispatch_flow(DispatchParams()))
    for _ in range(300):
        await asyncio.sleep(0.05)
        with rt.uow() as uow:
            if uow.jobs.find(task["id"]) is None:
                continue
        rows = rows_by_agent(job_of(rt, task["id"]))
        if (
            len(rows) == 2
            and all(r.status == "WORKING" for r in rows.values())
            and rows["poller"].remote_task_id
        ):
            break
    else:
        pytest.fail("agents never started working")
    message = (await cancel_job(rt, task["id"])).message()
    summary = await asyncio.wait_for(run, 30)

    assert "cancelled job" in message and "queue told" in message
    assert line(summary, task["id"]) == "LEASE_LOST"
    job = job_of(rt, task["id"])
    assert job.status == "CANCELLED"
    assert {r.status for r in rows_by_agent(job).values()} == {"CANCELLED"}
    assert queue.task(task["id"])["status"] == "CANCELLED"
    # The sync agent got POST /cancel, the async one POST /tasks/{id}/cancel.
    paths = {(c.agent, c.task_id is not None) for c in farm.cancels}
    assert ("slow-1", False) in paths and ("poller", True) in paths


async def test_max_jobs_and_paging(
    rt: Runtime, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("fast", "fast", max_concurrency=10)
    tasks = [queue.add_task(title=f"t{i}", category="general") for i in range(5)]

    first = await dispatch_flow(DispatchParams(max_jobs=2, page_size=2))
    assert first.taken == 2
    assert queue.counts()["OPEN"] == 3
    second = await dispatch_flow(DispatchParams(page_size=2))
    assert second.taken == 3
    assert queue.counts()["COMPLETED"] == 5
    assert all(queue.take_attempts(t["id"]) == 1 for t in tasks)
    assert all(queue.finish_attempts(t["id"]) == 1 for t in tasks)


async def test_queue_rejecting_the_token_stops_the_run_cleanly(
    make_runtime: Callable[..., Runtime], queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    rt = make_runtime(remote_queue_token="wrong-token")
    add_agent("fast", "fast")
    queue.add_task(title="t", category="general")

    state = await dispatch_flow(DispatchParams(), return_state=True)
    summary = await state.aresult(raise_on_failure=False)

    assert state.is_failed() and state.message == summary.stopped_reason
    assert summary.jobs == []
    assert summary.stopped_reason is not None and "401" in summary.stopped_reason
    assert "wrong-token" not in summary.stopped_reason
    with rt.uow() as uow:
        assert list(uow.jobs.list()) == []


async def test_a_hedged_job_adds_a_second_agent_only_when_the_first_is_slow(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    # A hedge delay well above a loaded machine's task-run start-up: with 300 ms the backup's
    # own call could outlast the next delay and start the spare too.
    rt = make_runtime(dispatch_policy="hedge", hedge_delay_ms=1500, ranking_explore=False)
    # A long record puts "sluggish" first; it answers in 10 s, so the hedge fires.
    add_agent("sluggish", "slow:delay=10", runs=60, successes=60, reputation=0.95)
    add_agent("backup", "fast:delay=0.05", runs=60, successes=50, failures=10, reputation=0.8)
    add_agent("spare", "fast:delay=0.05", runs=60, successes=40, failures=20, reputation=0.6)
    task = queue.add_task(title="Summarise", category="general")

    summary = await dispatch_flow(DispatchParams())

    assert line(summary, task["id"]) == "COMPLETED"
    rows = rows_by_agent(job_of(rt, task["id"]))
    assert rows["backup"].won and rows["sluggish"].status == "CANCELLED"
    assert rows["spare"].status == "CANCELLED" and rows["spare"].started_at is None
    assert sorted(c.agent for c in farm.calls if c.path == "/execute") == ["backup", "sluggish"]
    # Prefect shows a task run for each agent actually called, none for the unneeded spare.
    run_id = job_of(rt, task["id"]).distributions[0].flow_run_id
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id or ""]))
        )
    states = {r.name.split(" <- ")[0]: r.state_type.value for r in runs if " <- " in r.name}
    assert states == {"backup": "COMPLETED", "sluggish": "CANCELLED"}
