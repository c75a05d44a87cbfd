"""A backlog nobody can serve: judged once at intake, then left alone while the agents that
could change the verdict are unchanged (SQLite, loopback queue and agents, no Prefect)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from agent_dispatch.db.job_repository import spec_of
from agent_dispatch.db.models import Agent, Job
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.breaker import Circuit
from agent_dispatch.domain.matching import NAME_ALL_UP_TO
from agent_dispatch.domain.model import AgentStats
from agent_dispatch.services.agents import register_agent, update_agent
from agent_dispatch.services.dispatching import PlainSteps, dispatch_one
from agent_dispatch.services.intake import Intake, store_and_lease
from agent_dispatch.services.planning import unserved
from agent_dispatch.services.queue_io import fetch_open_page
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")  # clients close on the loop that made them


async def _intake(deps: TestDeps, limit: int = 50) -> Intake:
    page = await fetch_open_page(deps, None, 50)
    return await store_and_lease(deps, page.tasks, limit)


def _job(deps: TestDeps, qid: str) -> Job:
    with deps.uow() as uow:
        job = uow.jobs.find(qid)
        assert job is not None
        uow.session.expunge(job)
        return job


def _version(deps: TestDeps) -> int:
    with deps.uow() as uow:
        return uow.jobs.pool_version()


async def test_a_task_no_agent_serves_is_judged_at_intake_and_waits_unleased_with_why(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("coder", categories=("code",))
    task = queue.add_task(title="Contract", category="legal")

    intake = await _intake(deps)

    assert intake.claims == [] and intake.pending == ()
    assert [(u.queue_task_id, u.reason) for u in intake.unserved] == [
        (task["id"], "no eligible agent (coder: category 'legal' not in ['code'])")
    ]
    job = _job(deps, task["id"])
    assert (job.status, job.lease_token, job.attempts) == ("OPEN", None, 0)
    assert job.match_summary == intake.unserved[0].reason
    assert job.unserved_version == _version(deps)
    assert queue.task(task["id"])["status"] == "OPEN" and queue.take_attempts(task["id"]) == 0


async def test_in_a_larger_fleet_intake_judges_by_the_category_and_says_what_planning_says(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    """Past NAME_ALL_UP_TO agents a verdict reads the agents listing the job's category and
    counts the rest under the category rule, as planning's explanation does (the whole fleet
    is never read: that cost 0.64 s of CPU per intake at 10,000 agents)."""
    for i in range(NAME_ALL_UP_TO + 4):
        add_agent(f"a{i:02d}", categories=("code",))
    add_agent("lawyer", categories=("legal",), active=False)
    task = queue.add_task(title="Contract", category="legal")

    intake = await _intake(deps)

    (verdict,) = intake.unserved
    with deps.uow() as uow:
        job = uow.jobs.find(task["id"])
        assert job is not None
        small = uow.agents.is_small_fleet()
        planned = unserved(uow, spec_of(job), utcnow(), small).summary
    assert not small
    assert verdict.reason == planned
    assert verdict.reason == (
        f"no eligible agent (lawyer: inactive; by rule: {NAME_ALL_UP_TO + 4} category, 1 inactive)"
    )


async def test_the_next_intake_leaves_a_judged_task_alone_without_writing_it(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("coder", categories=("code",))
    tasks = [queue.add_task(title=f"c{i}", category="legal") for i in range(3)]
    await _intake(deps)
    before = {t["id"]: _job(deps, t["id"]).updated_at for t in tasks}

    again = await _intake(deps)

    assert (again.waiting, again.unserved, again.claims, again.pending) == (3, (), [], ())
    assert {t["id"]: _job(deps, t["id"]).updated_at for t in tasks} == before


@pytest.mark.parametrize(
    "change",
    ["register", "categories", "reactivate", "tags", "skill", "heal", "remove"],
)
async def test_an_agent_change_that_could_lift_the_verdict_has_the_task_judged_again(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm, change: str
) -> None:
    farm.add("lawyer", "fast")
    url = farm.url_for("lawyer")
    fields = {"categories": ["legal"], "tags": ["en"], "skill_level": 3}
    if change != "register":  # an agent one change away from fitting the task
        broken = {
            "categories": {"categories": ["code"]},
            "reactivate": {"active": False},
            "tags": {"tags": []},
            "skill": {"skill_level": 1},
            "heal": {"healthy": False},
            "remove": {"categories": ["code"]},  # removing it changes the list of reasons
        }[change]
        with deps.uow() as uow:
            uow.agents.add(Agent(name="lawyer", url=url, **{**fields, **broken}))
            uow.commit()
    task = queue.add_task(title="Contract", category="legal", tags=["en"], skillLevel=2)
    assert len((await _intake(deps)).unserved) == 1
    judged_at = _version(deps)

    if change == "register":
        await register_agent(deps, "lawyer", url, categories=["legal"], tags=["en"], skill_level=3)
    elif change == "remove":
        with deps.uow() as uow:
            assert uow.agents.remove("lawyer")
            uow.commit()
    else:
        with deps.uow() as uow:
            agent = uow.agents.get_by_name("lawyer")
            assert agent is not None
            for key, value in fields.items():
                setattr(agent, key, value)
            agent.active, agent.healthy = True, True
            uow.commit()

    assert _version(deps) > judged_at
    again = await _intake(deps)
    assert again.waiting == 0
    if change == "remove":  # judged again, still unservable, the reason now names no agent
        assert [u.reason for u in again.unserved] == ["no eligible agent"]
        return
    assert [c.spec.queue_task_id for c in again.claims] == [task["id"]]
    line = await dispatch_one(PlainSteps(deps), again.claims[0], capacity_wait=0)
    assert (line.outcome, line.winner) == ("COMPLETED", "lawyer")
    assert queue.task(task["id"])["status"] == "COMPLETED"


async def test_writes_that_cannot_lift_the_verdict_keep_the_version(
    deps: TestDeps, add_agent: Callable[..., str]
) -> None:
    add_agent("coder", categories=("code",), healthy=True)
    judged_at = _version(deps)
    now = utcnow()
    with deps.uow() as uow:
        agent = uow.agents.get_by_name("coder")
        assert agent is not None
        tripped = Circuit(5, now + dt.timedelta(minutes=1))
        uow.agents.save_records(
            now, [(agent.id, AgentStats(runs=4, successes=3, failures=1), tripped)]
        )
        agent.max_concurrency = 9  # capacity: a busy verdict is never recorded (see below)
        uow.agents.record_health(agent, True, "ok", now)  # healthy, as it was
        uow.commit()
    await update_agent(deps, "coder", categories=["code"])  # the same categories again
    assert _version(deps) == judged_at


async def test_a_task_whose_only_fitting_agent_is_tripped_is_planned_every_run(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("lawyer", categories=("legal",))
    with deps.uow() as uow:
        agent = uow.agents.get_by_name("lawyer")
        assert agent is not None
        agent.consecutive_failures, agent.circuit_open_until = 5, utcnow() + dt.timedelta(hours=1)
        uow.commit()
    task = queue.add_task(title="Contract", category="legal")

    for _ in range(2):  # the circuit half-opens with time, no write: never a recorded verdict
        intake = await _intake(deps)
        assert intake.unserved == () and intake.waiting == 0
        (claim,) = intake.claims
        line = await dispatch_one(PlainSteps(deps), claim, capacity_wait=0)
        assert line.outcome == "UNSERVED" and "circuit open" in (line.detail or "")
        assert _job(deps, task["id"]).unserved_version is None


async def test_a_judged_task_that_expires_is_planned_and_ends_expired(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("coder", categories=("code",))
    task = queue.add_task(title="Contract", category="legal")
    await _intake(deps)
    with deps.uow() as uow:
        job = uow.jobs.find(task["id"])
        assert job is not None
        job.expires_at = utcnow() - dt.timedelta(seconds=1)
        uow.commit()

    (claim,) = (await _intake(deps)).claims
    line = await dispatch_one(PlainSteps(deps), claim, capacity_wait=0)

    assert line.outcome == "EXPIRED"
    assert queue.task(task["id"])["status"] == "EXPIRED"


async def test_tasks_beyond_the_limit_are_pending_and_leased_when_offered_again(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("generalist")
    ids = [queue.add_task(title=f"g{i}")["id"] for i in range(5)]
    queue.add_task(title="nobody", category="legal")

    first = await _intake(deps, limit=2)
    page = await fetch_open_page(deps, None, 50)
    rest = [i for i in page.tasks if i.spec.queue_task_id in set(first.pending)]
    second = await store_and_lease(deps, rest, 10)

    assert len(first.claims) == 2 and len(first.unserved) == 1 and len(first.pending) == 3
    assert second.pending == () and second.unserved == ()
    leased = {c.spec.queue_task_id for c in first.claims + second.claims}
    assert leased == set(ids)


async def test_a_page_is_judged_only_as_far_as_the_room_needs_the_rest_when_offered_again(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    # A run with room for two re-offers its page each time a slot frees: judging the whole
    # page each time cost about 8% of a busy run's CPU. The rest is judged when its turn comes.
    add_agent("generalist")
    servable = [queue.add_task(title=f"g{i}")["id"] for i in range(40)]
    nobody = queue.add_task(title="nobody", category="legal")["id"]

    first = await _intake(deps, limit=2)
    assert len(first.claims) == 2 and first.unserved == ()
    assert nobody in first.pending and len(first.pending) == 39  # unjudged ones wait too
    assert _job(deps, nobody).unserved_version is None  # not judged yet

    page = await fetch_open_page(deps, None, 50)
    rest = [i for i in page.tasks if i.spec.queue_task_id in set(first.pending)]
    second = await store_and_lease(deps, rest, 50)
    assert [u.queue_task_id for u in second.unserved] == [nobody]
    assert second.pending == ()
    leased = {c.spec.queue_task_id for c in first.claims + second.claims}
    assert leased == set(servable)
