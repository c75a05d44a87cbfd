"""A half-open circuit lets exactly one job try the agent; its answer closes or re-opens it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest

from agent_dispatch.db.models import Agent
from agent_dispatch.db.types import utcnow
from agent_dispatch.services.dispatching import NotFinished, PlainSteps, dispatch_one
from agent_dispatch.services.intake import store_and_lease
from agent_dispatch.services.queue_io import fetch_open_page
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.reliability import claim, decisions, store
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")  # clients close on the loop that made them


def _half_open(deps: TestDeps, name: str) -> None:
    with deps.uow() as uow:
        agent = uow.agents.get_by_name(name)
        assert agent is not None
        agent.consecutive_failures = 5
        agent.circuit_open_until = utcnow() - dt.timedelta(seconds=1)  # the open period is over
        uow.commit()


def _agent(deps: TestDeps, name: str) -> Agent:
    with deps.uow() as uow:
        agent = uow.agents.get_by_name(name)
        assert agent is not None
        return agent


async def test_a_half_open_agent_takes_one_trial_job_and_closes_when_it_succeeds(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("recovering", "fast:delay=0.5", max_concurrency=5)
    _half_open(deps, "recovering")
    first = queue.add_task(title="one", category="general")
    second = queue.add_task(title="two", category="general")
    page = await fetch_open_page(deps, None, 50)
    claims = (await store_and_lease(deps, page.tasks, 2)).claims

    lines = await asyncio.gather(
        *(dispatch_one(PlainSteps(deps), c, capacity_wait=0) for c in claims)
    )

    outcomes = {line.queue_task_id: str(line.outcome) for line in lines}
    assert sorted(outcomes.values()) == ["COMPLETED", NotFinished.UNSERVED]
    # The second job learns it at planning (the trial is under way) or, when both planned
    # first, at reservation: either way it waits and the agent gets one call.
    waiting = next(line for line in lines if line.outcome == NotFinished.UNSERVED)
    assert "half-open" in (waiting.detail or "") or "filled up" in (waiting.detail or "")
    assert {first["id"], second["id"]} == set(outcomes)
    after = _agent(deps, "recovering")
    assert after.consecutive_failures == 0 and after.circuit_open_until is None


async def test_a_failed_trial_reopens_the_circuit_for_another_period(
    deps: TestDeps, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("still-broken", "failing")
    _half_open(deps, "still-broken")
    queue.add_task(title="trial", category="general")
    page = await fetch_open_page(deps, None, 50)
    (claim,) = (await store_and_lease(deps, page.tasks, 1)).claims

    line = await dispatch_one(PlainSteps(deps), claim, capacity_wait=0)

    assert line.outcome == "FAILED"
    after = _agent(deps, "still-broken")
    assert after.circuit_open_until is not None and after.circuit_open_until > utcnow()


async def test_reserving_a_half_open_agent_allows_one_call_even_when_both_jobs_chose_it(
    deps: TestDeps, add_agent: Callable[..., str]
) -> None:
    aid = add_agent("recovering", max_concurrency=5)
    _half_open(deps, "recovering")
    leases = []
    for qid in ("t1", "t2"):
        store(deps, qid)
        leases.append(claim(deps, qid))

    made = []
    for lease in leases:  # both plans chose the agent before either reserved it
        with deps.uow() as uow:
            made.append(uow.distributions.create(lease, decisions((aid, "recovering")), utcnow()))
            uow.commit()

    assert [len(d.assignments) for d in made] == [1, 0]
    assert made[1].dropped == ("recovering",)
