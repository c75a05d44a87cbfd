"""Reliability flows on real Prefect, PostgreSQL and loopback simulators: several workers at
once, rescue after a crash, a stale worker that wakes up, health and the circuit breaker."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Agent, Job, JobDistributionAgent
from agent_dispatch.db.types import utcnow
from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow
from agent_dispatch.flows.health import health_flow
from agent_dispatch.flows.sweep import SweepParams, sweep_flow
from agent_dispatch.services.sweep import rescue_expired
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.flows.conftest import PATIENT_MS
from tests.support.reliability import age_lease, claim, store

pytestmark = [pytest.mark.flow]


def takes(queue: SimulatedQueue) -> Counter[str]:
    return Counter(
        p.task_id
        for p in queue.patches
        if p.status_code == 200 and p.body.get("status") == "DISTRIBUTED"
    )


async def test_three_workers_at_once_take_and_finish_each_task_exactly_once(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    make_runtime(job_concurrency=5, queue_page_size=5, default_agent_timeout=PATIENT_MS)
    for name in ("a", "b", "c"):
        add_agent(name, "fast:delay=0.05", max_concurrency=100)
    tasks = [queue.add_task(title=f"t{i}", category="general", maxAgents=2) for i in range(12)]
    # Slow takes keep each leased job OPEN for seconds (the runs start a second or more apart):
    # without exclusive leases, a run reading the same page meanwhile would lease and try to
    # take the job too (verified by dropping `free` from JobRepository._claim).
    queue.delay_next(12, 5.0, method="PATCH")

    summaries = await asyncio.gather(*(dispatch_flow(DispatchParams()) for _ in range(3)))

    ids = [t["id"] for t in tasks]
    assert all(queue.task(t)["status"] == "COMPLETED" for t in ids)
    assert set(takes(queue).values()) == {1} and set(takes(queue)) == set(ids)
    assert {queue.finished_count(t) for t in ids} == {1}
    # The queue refuses a second take or ending, so the counts above hold even when two runs
    # hold one job. Exclusive leases mean no run even tries: one attempt each, no 409 at all.
    assert {t: queue.take_attempts(t) for t in ids} == dict.fromkeys(ids, 1)
    assert {t: queue.finish_attempts(t) for t in ids} == dict.fromkeys(ids, 1)
    assert [p for p in queue.patches if p.status_code == 409] == []
    done = Counter(j.queue_task_id for s in summaries for j in s.jobs if j.outcome == "COMPLETED")
    assert set(done.values()) == {1} and len(done) == 12  # no run finished another's job
    assert max(farm.summary()["executions"].values()) == 1  # one call per agent per attempt


async def test_crash_after_the_take_is_rescued_by_the_sweep_and_finished_once(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
) -> None:
    rt = make_runtime()
    add_agent("a", "fast:delay=0.05")
    task = queue.add_task(title="t", category="general")
    job_id = store(rt, task["id"])
    claim(rt, task["id"], "dead-worker")
    queue.set_status(task["id"], "DISTRIBUTED")  # the take went through, then the process died
    age_lease(rt, job_id)

    swept = await sweep_flow(SweepParams(settle_seconds=0))
    assert swept.counts() == {"rescued": 1}
    summary = await dispatch_flow(DispatchParams())

    assert [j.outcome for j in summary.jobs] == ["COMPLETED"]
    assert queue.task(task["id"])["status"] == "COMPLETED"
    assert queue.finished_count(task["id"]) == 1
    assert takes(queue) == Counter()  # never taken twice


async def test_stale_worker_that_loses_its_lease_mid_race_stops_and_never_reports(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    rt = make_runtime(lease_check_seconds=0.1)
    add_agent("slow", "slow:delay=4")
    task = queue.add_task(title="t", category="general")
    run = asyncio.create_task(dispatch_flow(DispatchParams()))

    async def working() -> str:
        while True:
            with rt.uow() as uow:
                job = uow.jobs.find(task["id"])
                rows = uow.session.query(JobDistributionAgent).all()
                if job is not None and any(r.status == "WORKING" for r in rows):
                    return job.id
            await asyncio.sleep(0.05)

    job_id = await asyncio.wait_for(working(), 30)
    age_lease(rt, job_id)  # as if the worker had paused past its lease ...
    await rescue_expired(rt, 100)  # ... and the sweep handed the job to someone else
    summary = await run

    assert [j.outcome for j in summary.jobs] == ["LEASE_LOST"]
    assert queue.finished_count(task["id"]) == 0  # the stale worker wrote nothing to the queue
    assert farm.cancels, "the stale worker stopped its agent call"
    farm.set_behaviour("slow", "fast:delay=0.05")
    again = await dispatch_flow(DispatchParams())
    assert [j.outcome for j in again.jobs] == ["COMPLETED"]
    assert queue.finished_count(task["id"]) == 1


async def test_health_flow_marks_agents_and_matching_skips_the_unhealthy(
    rt: Runtime,
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
) -> None:
    add_agent("sick", "unhealthy")
    add_agent("well", "fast:delay=0.05")

    health = await health_flow()

    assert {a["name"]: a["healthy"] for a in health.agents} == {"sick": False, "well": True}
    queue.add_task(title="t", category="general", maxAgents=3)
    summary = await dispatch_flow(DispatchParams())
    assert [(j.outcome, j.winner) for j in summary.jobs] == [("COMPLETED", "well")]
    with rt.uow() as uow:
        called = {r.agent_name for r in uow.session.query(JobDistributionAgent)}
    assert called == {"well"}


async def test_circuit_opens_after_repeated_failures_and_matching_skips_the_agent(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    rt = make_runtime(
        circuit_failure_threshold=2, circuit_reset_seconds=600, execution_retry_count=0
    )
    add_agent("broken", "error500")
    for i in range(3):
        queue.add_task(title=f"t{i}", category="general")
        await dispatch_flow(DispatchParams())

    with rt.uow() as uow:
        agent = uow.agents.get_by_name("broken")
        assert agent is not None and agent.circuit_open_until is not None
        assert agent.circuit_open_until > utcnow()
        third = uow.session.query(Job).order_by(Job.created_at.desc()).first()
        assert third is not None and "circuit open" in (third.match_summary or "")
    assert len(farm.calls_for("broken")) == 2  # the third job never called it
    assert isinstance(agent, Agent)


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("401", "401"),
        ("503", "unavailable after"),
        ("429", "unavailable after"),
        ("not json", "not JSON"),
        ("wrong shape", "no tasks list"),
        ("timeout", "timed out"),
    ],
)
async def test_queue_faults_end_the_run_with_one_line_and_nothing_half_written(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    fault: str,
    says: str,
) -> None:
    rt = make_runtime(execution_retry_count=0, queue_timeout_seconds=0.5)
    add_agent("a", "fast:delay=0.05")
    task = queue.add_task(title="t", category="general")
    if fault in ("401", "503", "429"):
        queue.fail_next(5, int(fault), retry_after=0.05, method="GET")
    elif fault == "timeout":
        queue.delay_next(5, 2.0, method="GET")
    else:
        queue.malformed_next(5, "text" if fault == "not json" else "shape", method="GET")

    state = await dispatch_flow(DispatchParams(), return_state=True)
    summary = await state.aresult(raise_on_failure=False)

    assert state.is_failed() and state.message == summary.stopped_reason
    reason = summary.stopped_reason or ""
    assert says in reason and "\n" not in reason and len(reason) < 300
    assert "flow-test-token" not in reason
    with rt.uow() as uow:
        assert uow.jobs.list() == []
    assert queue.task(task["id"])["status"] == "OPEN"


async def test_a_take_lost_to_queue_errors_is_released_by_the_sweep_and_done_later(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
) -> None:
    make_runtime(execution_retry_count=0)
    add_agent("a", "fast:delay=0.05")
    task = queue.add_task(title="t", category="general")
    queue.fail_next(5, 503, retry_after=0, method="PATCH")  # more than its retries

    first = await dispatch_flow(DispatchParams())
    assert [j.outcome for j in first.jobs] == ["CRASHED"]
    swept = await sweep_flow(SweepParams(settle_seconds=0))
    assert swept.counts() == {"released": 1}
    second = await dispatch_flow(DispatchParams())

    assert [j.outcome for j in second.jobs] == ["COMPLETED"]
    assert queue.finished_count(task["id"]) == 1
