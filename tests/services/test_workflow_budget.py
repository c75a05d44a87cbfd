"""JOB_CONCURRENCY bounds a run's races, steps included: a workflow's parallel steps share the
run's slots with its other jobs, and parents never hold the slots their steps wait for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.services.dispatching import JobLine, PlainSteps, dispatch_one
from agent_dispatch.services.intake import Claim, store_and_lease
from agent_dispatch.services.job_pool import JobPool
from agent_dispatch.services.queue_io import fetch_open_page
from agent_dispatch.services.workflow_runs import plain_step, run_workflow
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.services import workflow_support as wf

FAN = """\
name: fan
defaults: { maxAgents: 1 }
steps:
  - { id: a, category: general }
  - { id: b, category: general }
  - { id: c, category: general }
  - { id: join, needs: [a, b, c], category: general }
"""


class Quiet:
    def add(self, n: int) -> None:
        return None

    async def job_done(self, line: JobLine) -> None:
        return None


async def dispatch_all(deps: Runtime) -> list[JobLine]:
    """What the dispatch flow does, as plain services: every OPEN task through one pool."""
    s = deps.settings

    async def run(claim: Claim) -> JobLine:
        if claim.spec.workflow:
            return await run_workflow(deps, claim, plain_step(deps, 0), pool.slots)
        return await dispatch_one(PlainSteps(deps), claim, 0)

    pool = JobPool(s.job_concurrency, run, Quiet())
    backlog = list((await fetch_open_page(deps, None, 50)).tasks)
    while backlog:
        room = await pool.room(None)
        batch, backlog = backlog[:room], backlog[room:]
        pool.start((await store_and_lease(deps, batch, len(batch))).claims)
    lines = await pool.drain()
    assert pool.slots.in_use == 0  # every slot given back
    return lines


async def test_two_slots_bound_the_races_of_three_parallel_workflows_and_all_finish(
    make_deps: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    deps = make_deps(remote_queue_url=queue.url, job_concurrency=2)
    wf.register(deps, FAN)
    add_agent("worker", "fast:delay=0.3", max_concurrency=50)  # the agent is no limit
    parents = [queue.add_task(title=f"p{i}", workflow="fan") for i in range(3)]
    plain = queue.add_task(title="plain")

    # More parents than slots: a run that let parents hold slots would hang here.
    lines = await asyncio.wait_for(dispatch_all(deps), timeout=60)

    assert {line.queue_task_id: line.outcome for line in lines} == {
        **{p["id"]: "COMPLETED" for p in parents},
        plain["id"]: "COMPLETED",
    }
    assert len(farm.calls_for("worker")) == 3 * 4 + 1
    # One agent call per race: the agent saw the races at once, never more than two.
    assert farm.peak_in_flight("worker") == 2
