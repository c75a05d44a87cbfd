"""What Prefect task runs and the database cost per job, measured side by side in one run.

    .venv/bin/python -m benchmarks.dispatch_overhead [--jobs 200] [--agents 3] [--database URL]

Rows: (1) a trivial Prefect task run vs a plain coroutine call; (2) calling the agents directly
with the same HTTP client (no Prefect, no database) vs the full dispatch flow over the same
jobs and instant agents (SQLite by default, or PostgreSQL with --database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import tempfile
import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.bootstrap import Runtime, set_runtime
from agent_dispatch.clients.agent import AgentClient, AgentEndpoint
from agent_dispatch.clients.retry import RetryPolicy
from agent_dispatch.clients.wire import JobExecutionData
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent
from agent_dispatch.settings import Settings
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue

TOKEN = "bench-token"


@task(cache_policy=NO_CACHE)
async def trivial_task(i: int) -> int:
    return i


async def trivial_coroutine(i: int) -> int:
    return i


@flow
async def task_cost(n: int) -> tuple[float, float]:
    started = time.perf_counter()
    for i in range(n):
        await trivial_coroutine(i)
    plain = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(n):
        await trivial_task(i)
    tasks = time.perf_counter() - started
    return plain, tasks


async def direct_calls(farm: AgentFarm, names: list[str], jobs: int) -> float:
    """Per job: call every agent at once, keep the first answer: the flow minus Prefect/DB."""
    endpoints = [AgentEndpoint(n, n, farm.url_for(n)) for n in names]
    async with AgentClient(retry=RetryPolicy(attempts=0)) as client:
        started = time.perf_counter()
        for j in range(jobs):
            deadline = time.monotonic() + 10
            data = [
                JobExecutionData(
                    job_id=f"j{j}",
                    distribution_id=f"d{j}",
                    agent_id=e.agent_id,
                    title="t",
                    category="general",
                    payload={},
                    deadline=dt.datetime.now(dt.UTC),
                )
                for e in endpoints
            ]
            calls = [
                asyncio.ensure_future(client.execute(e, d, deadline=deadline))
                for e, d in zip(endpoints, data, strict=True)
            ]
            await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
            for c in calls:
                c.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
        return time.perf_counter() - started


def pipeline(
    database_url: str, queue: SimulatedQueue, farm: AgentFarm, names: list[str], jobs: int
) -> tuple[float, int]:
    settings = Settings.model_validate(
        {
            "database_url": database_url,
            "remote_queue_url": queue.url,
            "remote_queue_token": TOKEN,
            "agent_allow_private_networks": True,
            "max_agents_per_job": len(names),
            "queue_page_size": 100,
        }
    )
    rt = Runtime(settings)
    set_runtime(rt)
    upgrade(rt.engine)
    with rt.uow() as uow:
        for n in names:
            uow.agents.add(
                Agent(name=n, url=farm.url_for(n), categories=["general"], max_concurrency=jobs)
            )
        uow.commit()
    for i in range(jobs):
        queue.add_task(title=f"job {i}", category="general")
    from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow

    started = time.perf_counter()
    summary = asyncio.run(dispatch_flow(DispatchParams()))
    elapsed = time.perf_counter() - started
    rt.dispose()
    return elapsed, summary.count("COMPLETED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--trivial", type=int, default=300, help="task runs for row 1")
    parser.add_argument("--database", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database_url = args.database or f"sqlite:///{tmp / 'bench.db'}"
        queue = SimulatedQueue(TOKEN)
        farm = AgentFarm({f"instant-{i}": "fast:delay=0" for i in range(args.agents)})
        stack.enter_context(queue.serve())
        stack.enter_context(farm.serve())
        names = farm.names

        plain, tasks = asyncio.run(task_cost(args.trivial))
        direct = asyncio.run(direct_calls(farm, names, args.jobs))
        flow_s, completed = pipeline(database_url, queue, farm, names, args.jobs)

    per_plain = plain / args.trivial * 1000
    per_task = tasks / args.trivial * 1000
    per_direct = direct / args.jobs * 1000
    per_flow = flow_s / args.jobs * 1000
    task_runs_per_job = 3 + args.agents  # plan, take, finish + one per agent call
    print(
        f"dispatch overhead — {args.jobs} jobs x {args.agents} instant agents, "
        f"database {database_url.split(':', 1)[0]}"
    )
    print(f"{'measure':<46}{'ms':>10}{'ratio':>10}")
    print(f"{'plain coroutine call':<46}{per_plain:>10.4f}{'':>10}")
    print(f"{'trivial Prefect task run (ephemeral server)':<46}{per_task:>10.2f}{'':>10}")
    print(f"{'job: agents called directly (no Prefect/DB)':<46}{per_direct:>10.2f}{1:>10.1f}")
    print(
        f"{'job: full dispatch flow (wall / jobs)':<46}{per_flow:>10.2f}"
        f"{per_flow / per_direct:>10.1f}"
    )
    print(
        f"{'job: task runs x trivial task-run cost':<46}{task_runs_per_job * per_task:>10.2f}"
        f"{task_runs_per_job * per_task / per_direct:>10.1f}"
    )
    print(
        f"jobs completed by the flow: {completed}/{args.jobs}; "
        f"{task_runs_per_job} task runs per job"
    )


if __name__ == "__main__":
    main()
