"""The kept in-flight counter through the services' own paths (SQLite, loopback agents):
a race's winner and losers, an operator's cancel and the sweep's rescue leave every agent's
counter equal to its open rows, and planning reads it to keep a full agent out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.lifecycle import PlanKind
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import AgentRunStatus, JobStatus
from agent_dispatch.services.cancel import cancel_job
from agent_dispatch.services.dispatching import PlainSteps, dispatch_one
from agent_dispatch.services.intake import Claim, store_and_lease
from agent_dispatch.services.planning import plan_job
from agent_dispatch.services.queue_io import fetch_open_page
from agent_dispatch.services.sweep import rescue_expired
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support import reliability as rel
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")


def kept(deps: TestDeps) -> dict[str, int]:
    with deps.uow() as uow:
        counted = uow.agents.recount_in_flight()
        found = {a.name: (a.in_flight, counted.get(a.id, 0)) for a in uow.agents.list()}
    assert all(k == n for k, n in found.values()), found
    return {name: k for name, (k, _) in found.items()}


async def test_winner_losers_cancel_and_sweep_leave_the_counter_equal_to_the_open_rows(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm, add_agent: Callable[..., str]
) -> None:
    add_agent("quick")
    add_agent("slow", "slow:delay=5")
    add_agent("broken", "failing")
    queue.add_task(title="race", category="general")
    page = await fetch_open_page(deps, None, 10)
    (claim,) = (await store_and_lease(deps, page.tasks, 10)).claims

    line = await dispatch_one(PlainSteps(deps), claim, capacity_wait=0)

    assert (str(line.outcome), line.winner) == ("COMPLETED", "quick")
    assert kept(deps) == {"broken": 0, "quick": 0, "slow": 0}

    farm.add("busy", "slow:delay=30")
    _, cancelled = rel.in_progress(
        deps, queue, agent_url=farm.url_for("busy"), started_ago=0, lease_lost=False
    )
    assert sorted(kept(deps).values()) == [0, 0, 0, 1, 1]
    await cancel_job(deps, cancelled)
    assert sorted(kept(deps).values()) == [0, 0, 0, 0, 0]

    rel.in_progress(deps, queue)  # its worker died an hour into the call
    assert sorted(kept(deps).values()) == [0, 0, 0, 0, 0, 1, 1]
    await rescue_expired(deps, 100)
    assert sorted(kept(deps).values()) == [0] * 7


async def test_planning_reads_the_counter_to_leave_a_full_agent_out_until_its_call_ends(
    deps: TestDeps,
) -> None:
    solo = rel.add_agent(deps, "solo", max_concurrency=1)
    rel.store(deps, "first")
    second_id = rel.store(deps, "second")
    first = rel.claim(deps, "first")
    with deps.uow() as uow:
        made = uow.distributions.create(first, rel.decisions((solo, "solo")), utcnow())
        (row,) = made.assignments
        uow.commit()
    spec = JobSpec(queue_task_id="second", title="job second", category="general")
    second = Claim(rel.claim(deps, "second"), second_id, spec, JobStatus.OPEN)

    full = await plan_job(deps, second)

    assert full.kind is PlanKind.UNSERVED and full.busy == 1
    assert full.exclusions == {"at max concurrency": 1}
    assert "solo: at max concurrency (1/1)" in full.summary
    with deps.uow() as uow:
        uow.distributions.move_agent(first, row.row_id, AgentRunStatus.CANCELLED)
        uow.commit()
    free = await plan_job(deps, second)
    assert free.kind is PlanKind.DISPATCH
    assert [d.agent_name for d in free.decisions if d.chosen] == ["solo"]
