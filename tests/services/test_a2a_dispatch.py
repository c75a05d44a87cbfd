"""A2A agents beside http-json agents, through the same services: registration from the
Agent Card, one job fanned out to both kinds, losers cancelled on each side. The A2A agents
are built from a2a-sdk's own server parts, on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from agent_dispatch.db.models import Agent, JobDistributionAgent
from agent_dispatch.services.agents import register_agent
from agent_dispatch.services.dispatching import JobLine, PlainSteps, dispatch_one
from agent_dispatch.services.errors import Invalid
from agent_dispatch.services.intake import store_and_lease
from agent_dispatch.services.queue_io import fetch_open_page
from agent_dispatch.simulators.a2a_agents import A2AAgentFarm, A2ABehaviour, a2a_behaviour
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")  # clients close on the loop that made them


@contextlib.contextmanager
def serving(**agents: str | A2ABehaviour) -> Iterator[A2AAgentFarm]:
    farm = A2AAgentFarm(agents)  # agents are added before the server starts
    with farm.serve():
        yield farm


async def _register(deps: TestDeps, name: str, url: str, protocol: str = "http-json") -> None:
    await register_agent(deps, name, url, categories=["text"], protocol=protocol)


async def _dispatch_one_task(deps: TestDeps) -> JobLine:
    page = await fetch_open_page(deps, None, 10)
    (claim,) = (await store_and_lease(deps, page.tasks, 1)).claims
    return await dispatch_one(PlainSteps(deps), claim, capacity_wait=0)


def _rows(deps: TestDeps) -> dict[str, JobDistributionAgent]:
    with deps.uow() as uow:
        return {r.agent_name: r for r in uow.session.query(JobDistributionAgent)}


async def test_an_a2a_agent_is_registered_from_its_card(deps: TestDeps) -> None:
    with serving(carded="fast") as a2a:
        view = await register_agent(
            deps, "carded", a2a.url_for("carded"), categories=[], protocol="a2a"
        )

    # Categories come from the skills' ids when none are given; tags from the skills' tags.
    assert view.protocol == "a2a"
    assert set(view.categories) == {"text", "code"}
    assert {"summary", "nlp", "review"} <= set(view.tags)


async def test_a_card_that_is_not_a_card_is_refused_in_one_line(deps: TestDeps) -> None:
    junk = a2a_behaviour("fast", card={"name": 42})
    with serving(junk=junk) as a2a, pytest.raises(Invalid, match="card refused") as refused:
        await _register(deps, "junk", a2a.url_for("junk"), "a2a")

    assert "\n" not in str(refused.value)
    with deps.uow() as uow:
        assert uow.session.query(Agent).count() == 0


async def test_a_job_fans_out_to_both_kinds_and_the_a2a_answer_wins(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm
) -> None:
    farm.add("http-slow", "slow")
    task = queue.add_task(title="Summarise", category="text", max_agents=2)
    with serving(**{"a2a-fast": "fast"}) as a2a:
        await _register(deps, "a2a-fast", a2a.url_for("a2a-fast"), "a2a")
        await _register(deps, "http-slow", farm.url_for("http-slow"))
        line = await _dispatch_one_task(deps)

    assert (str(line.outcome), line.winner) == ("COMPLETED", "a2a-fast")
    assert queue.task(task["id"])["status"] == "COMPLETED"
    assert queue.task(task["id"])["result"] is not None
    assert [c.agent for c in farm.cancels] == ["http-slow"]  # the http-json loser was told
    rows = _rows(deps)
    assert {n: r.status for n, r in rows.items()} == {
        "a2a-fast": "COMPLETED",
        "http-slow": "CANCELLED",
    }


async def test_a_losing_a2a_agent_gets_cancel_task_on_its_server(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm
) -> None:
    farm.add("http-fast", "fast:delay=0.5")  # answers after the A2A task exists
    queue.add_task(title="Summarise", category="text", max_agents=2)
    with serving(**{"a2a-slow": "cancellable"}) as a2a:
        await _register(deps, "a2a-slow", a2a.url_for("a2a-slow"), "a2a")
        await _register(deps, "http-fast", farm.url_for("http-fast"))
        line = await _dispatch_one_task(deps)
        cancels = a2a.cancels("a2a-slow")

    assert (str(line.outcome), line.winner) == ("COMPLETED", "http-fast")
    assert len(cancels) == 1
    loser = _rows(deps)["a2a-slow"]
    assert loser.status == "CANCELLED" and loser.remote_task_id  # its A2A task id was kept
