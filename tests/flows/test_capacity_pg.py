"""An agent's max concurrency holds across concurrent dispatch runs (PostgreSQL row locks).

Four dispatch flow runs, each in its own thread and event loop (as separate workers would run
them), share one PostgreSQL database. `DistributionRepository.create` locks the chosen agents'
rows FOR UPDATE and recounts their in-flight calls before assigning them, so the farm must
never see more open calls to an agent than its max_concurrency, while the runs do overlap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.flows.dispatch import DispatchParams, DispatchSummary, dispatch_flow
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.flows.conftest import PATIENT_MS

pytestmark = [pytest.mark.flow, pytest.mark.postgres, pytest.mark.slow]

RUNS = 4
JOBS_PER_RUN = 3


def worker(queue: SimulatedQueue, ids: list[str]) -> list[DispatchSummary]:
    """Like a worker under an interval schedule: dispatch runs, each on a fresh event loop in
    this thread, until no task is OPEN on the queue."""
    summaries: list[DispatchSummary] = []
    deadline = time.monotonic() + 120
    while any(queue.task(i)["status"] == "OPEN" for i in ids):
        assert time.monotonic() < deadline, "tasks left OPEN"
        summaries.append(asyncio.run(dispatch_flow(DispatchParams(max_jobs=JOBS_PER_RUN))))
    return summaries


async def test_max_concurrency_holds_across_concurrent_runs(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    rt = make_runtime(
        capacity_wait_seconds=60, job_concurrency=JOBS_PER_RUN, default_agent_timeout=PATIENT_MS
    )
    add_agent("solo", "fast:delay=0.4", categories=("solo",), max_concurrency=1)
    add_agent("duo", "fast:delay=0.4", categories=("duo",), max_concurrency=2)
    tasks = [
        queue.add_task(title=f"job {i}", category="solo" if i % 2 else "duo")
        for i in range(RUNS * JOBS_PER_RUN)
    ]

    ids = [t["id"] for t in tasks]
    per_worker = await asyncio.gather(*(asyncio.to_thread(worker, queue, ids) for _ in range(RUNS)))

    summaries = [s for runs in per_worker for s in runs]
    done = [line for s in summaries for line in s.jobs if line.outcome == "COMPLETED"]
    assert sorted(line.queue_task_id for line in done) == sorted(ids)
    assert all(queue.task(i)["status"] == "COMPLETED" for i in ids)
    # The limit held at the agent itself ...
    assert farm.peak_in_flight("solo") == 1
    assert farm.peak_in_flight("duo") == 2  # ... and the runs really did overlap.
    with rt.uow() as uow:
        for name in ("solo", "duo"):
            agent = uow.agents.get_by_name(name)
            assert agent is not None and agent.wins == len(tasks) // 2
