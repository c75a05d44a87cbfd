"""The dispatch lifecycle as plain services (no Prefect): SQLite, loopback queue and agents."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest

from agent_dispatch.db.models import Agent, Job, JobDistributionAgent
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.dispatching import NotFinished, PlainSteps, dispatch_one
from agent_dispatch.services.intake import Claim, store_and_lease
from agent_dispatch.services.queue_io import fetch_open_page
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.service_deps import RecordingEvents, TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")  # clients close on the loop that made them


async def _claim_all(deps: TestDeps) -> list[Claim]:
    page = await fetch_open_page(deps, None, 50)
    return (await store_and_lease(deps, page.tasks, len(page.tasks))).claims


async def _dispatch(deps: TestDeps) -> list[tuple[str, str, str | None]]:
    lines = [
        await dispatch_one(PlainSteps(deps), c, capacity_wait=0) for c in await _claim_all(deps)
    ]
    return [(line.queue_task_id, str(line.outcome), line.winner) for line in lines]


def _job(deps: TestDeps, qid: str) -> Job:
    with deps.uow() as uow:
        job = uow.jobs.find(qid)
        assert job is not None
        return job


async def test_first_good_answer_wins_and_the_queue_and_stats_are_told(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm, add_agent: Callable[..., str]
) -> None:
    add_agent("quick")
    add_agent("broken", "failing")
    task = queue.add_task(title="Summarise", category="general")

    assert await _dispatch(deps) == [(task["id"], "COMPLETED", "quick")]

    assert queue.task(task["id"])["status"] == "COMPLETED"
    assert queue.task(task["id"])["result"] is not None
    job = _job(deps, task["id"])
    assert job.status == "COMPLETED" and job.queue_status == "COMPLETED"
    with deps.uow() as uow:
        agents = {a.name: a for a in uow.session.query(Agent)}
    assert agents["quick"].wins == 1 and agents["quick"].successes == 1
    assert agents["broken"].failures == 1
    events = deps.events
    assert isinstance(events, RecordingEvents)
    assert events.statuses("job", task["id"]) == ["DISTRIBUTED", "IN_PROGRESS", "COMPLETED"]
    assert events.statuses("agent", "quick") == ["ASSIGNED", "WORKING", "COMPLETED"]
    assert events.statuses("agent", "broken") == ["ASSIGNED", "WORKING", "FAILED"]


async def test_a_job_no_agent_serves_is_left_waiting_with_the_reason_and_stays_open(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("coder", categories=("code",))
    task = queue.add_task(title="Translate", category="legal")

    # Judged at intake (services/intake.py): never leased, planned or taken.
    assert await _dispatch(deps) == []

    job = _job(deps, task["id"])
    assert job.status == "OPEN" and job.lease_token is None
    assert "category 'legal' not in" in (job.match_summary or "")
    assert queue.task(task["id"])["status"] == "OPEN"


async def test_an_expired_job_ends_expired_without_calling_any_agent(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm, add_agent: Callable[..., str]
) -> None:
    add_agent("quick")
    past = utcnow() - dt.timedelta(minutes=1)
    task = queue.add_task(title="Late", category="general", expires_at=past)

    assert await _dispatch(deps) == [(task["id"], "EXPIRED", None)]

    assert farm.calls == []
    assert queue.task(task["id"])["status"] == "EXPIRED"


async def test_when_every_agent_fails_the_job_fails_naming_each_failure(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("broken", "failing")
    add_agent("erring", "error500")
    task = queue.add_task(title="Doomed", category="general")

    assert await _dispatch(deps) == [(task["id"], "FAILED", None)]

    error = queue.task(task["id"])["error"]
    assert "broken: FAILED" in error and "erring: FAILED" in error


async def test_a_task_another_consumer_took_is_left_alone_and_no_agent_is_called(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm, add_agent: Callable[..., str]
) -> None:
    add_agent("quick")
    task = queue.add_task(title="Contested", category="general")
    claims = await _claim_all(deps)
    queue.set_status(task["id"], "DISTRIBUTED")  # someone else's take landed first

    line = await dispatch_one(PlainSteps(deps), claims[0], capacity_wait=0)

    assert line.outcome == NotFinished.CONFLICT
    assert farm.calls == []
    with deps.uow() as uow:
        assert uow.agents.in_flight_counts() == {}


async def test_an_operator_revoking_the_lease_mid_race_stops_the_agents(
    make_deps: Callable[..., TestDeps],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    deps = make_deps(remote_queue_url=queue.url, lease_check_seconds=0.05)
    add_agent("slowpoke", "slow")
    task = queue.add_task(title="Long", category="general")
    claims = await _claim_all(deps)

    async def revoke_soon() -> None:
        while not farm.calls:
            await asyncio.sleep(0.02)
        with deps.uow() as uow:
            uow.jobs.transition_unleased(claims[0].job_id, JobStatus.CANCELLED, utcnow())
            uow.commit()

    revoker = asyncio.create_task(revoke_soon())
    line = await dispatch_one(PlainSteps(deps), claims[0], capacity_wait=0)
    await revoker

    assert line.outcome == NotFinished.LEASE_LOST
    assert [c.agent for c in farm.cancels] == ["slowpoke"]
    assert _job(deps, task["id"]).status == "CANCELLED"


async def test_an_agent_whose_token_block_cannot_be_read_is_blocked_not_called(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm, add_agent: Callable[..., str]
) -> None:
    deps.secret_blocks["keyed-token"] = "block-value"
    add_agent("keyed", token_ref="secret-block:keyed-token")
    add_agent("orphan", token_ref="secret-block:deleted-in-the-ui")
    farm.add("keyed", "fast", token="block-value")  # it answers only to the block's value
    task = queue.add_task(title="Summarise", category="general")

    assert await _dispatch(deps) == [(task["id"], "COMPLETED", "keyed")]

    assert farm.calls_for("orphan") == []
    with deps.uow() as uow:
        orphan = {r.agent_name: r for r in uow.session.query(JobDistributionAgent)}["orphan"]
    assert (orphan.status, orphan.failure_kind) == ("FAILED", "blocked")
    assert orphan.error is not None and "'deleted-in-the-ui' not found" in orphan.error
