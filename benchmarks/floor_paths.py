"""The four ways the dispatch-floor benchmark gets a batch of queue tasks done.

- raw: asyncio + the same httpx clients, nothing else: list the OPEN tasks, per job take it
  (OPEN -> DISTRIBUTED -> IN_PROGRESS), call every agent at once, report the first answer
  COMPLETED, then stop the others (POST /cancel while their request is open);
- prefect: the same inside a flow run, each agent call one async task run ("Prefect's floor");
- events: Prefect's floor plus the Prefect events agent-dispatch emits for a job (the job's
  DISTRIBUTED / IN_PROGRESS / COMPLETED, each agent's ASSIGNED, WORKING and its end, the agent
  events from inside the call's task run as in traced mode), through the same event sink, and
  nothing else: what those events cost the dispatcher and the Prefect server;
- traced / lean: agent-dispatch's own dispatch flow in that DISPATCH_MODE, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Coroutine
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.clients.agent import AgentClient, AgentEndpoint, AgentReply
from agent_dispatch.clients.queue import RemoteQueueClient
from agent_dispatch.clients.retry import RetryPolicy
from agent_dispatch.clients.wire import JobExecutionData
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.deps import EventSink, NullEvents
from benchmarks.floor_sims import TOKEN

Call = Callable[
    [AgentClient, AgentEndpoint, JobExecutionData, asyncio.Event, EventSink],
    Coroutine[Any, Any, AgentReply | None],
]


async def plain_call(
    agents: AgentClient,
    endpoint: AgentEndpoint,
    data: JobExecutionData,
    stop: asyncio.Event,
    events: EventSink,
) -> AgentReply | None:
    """One agent call until it answers or is stopped (then the agent is told to cancel)."""

    def said(status: str) -> None:
        events.agent_changed(data.job_id, data.job_id, endpoint.agent_id, endpoint.name, status)

    said("WORKING")
    call = asyncio.ensure_future(agents.execute(endpoint, data, deadline=time.monotonic() + 30))
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if call.done():
        said("FAILED" if call.exception() else "COMPLETED")
        return None if call.exception() else call.result()
    await agents.cancel(
        endpoint, job_id=data.job_id, distribution_id=data.distribution_id, remote_task_id=None
    )
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    said("CANCELLED")
    return None


@task(name="floor-call", cache_policy=NO_CACHE, persist_result=False)
async def _call_task(
    agents: AgentClient,
    endpoint: AgentEndpoint,
    data: JobExecutionData,
    stop: asyncio.Event,
    events: EventSink,
) -> AgentReply | None:
    return await plain_call(agents, endpoint, data, stop, events)


async def task_run_call(
    agents: AgentClient,
    endpoint: AgentEndpoint,
    data: JobExecutionData,
    stop: asyncio.Event,
    events: EventSink,
) -> AgentReply | None:
    """The same call as one Prefect task run (an async task in an async flow is a coroutine)."""
    reply: AgentReply | None = await _call_task(agents, endpoint, data, stop, events)  # type: ignore[misc]
    return reply


async def _one_job(
    queue: RemoteQueueClient,
    agents: AgentClient,
    endpoints: list[AgentEndpoint],
    task_id: str,
    call: Call,
    events: EventSink,
) -> bool:
    if not await queue.take(task_id):
        return False
    events.job_changed(task_id, task_id, "DISTRIBUTED")
    for e in endpoints:
        events.agent_changed(task_id, task_id, e.agent_id, e.name, "ASSIGNED")
    await queue.change_status(task_id, JobStatus.IN_PROGRESS, JobStatus.DISTRIBUTED)
    events.job_changed(task_id, task_id, "IN_PROGRESS")
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    stops = [asyncio.Event() for _ in endpoints]
    calls = [
        asyncio.create_task(
            call(
                agents,
                e,
                JobExecutionData(
                    job_id=task_id,
                    distribution_id=f"floor-{task_id}",
                    agent_id=e.agent_id,
                    title="floor job",
                    category="general",
                    payload={},
                    deadline=deadline,
                ),
                stop,
                events,
            )
        )
        for e, stop in zip(endpoints, stops, strict=True)
    ]
    pending: set[asyncio.Task[AgentReply | None]] = set(calls)
    winner: AgentReply | None = None
    while pending and winner is None:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        winner = next((d.result() for d in done if d.result() is not None), None)
    await queue.change_status(
        task_id,
        JobStatus.COMPLETED if winner else JobStatus.FAILED,
        JobStatus.IN_PROGRESS,
        result=winner.result if winner else None,
        error=None if winner else "every agent failed",
    )
    events.job_changed(task_id, task_id, "COMPLETED" if winner else "FAILED")
    for stop in stops:
        stop.set()
    await asyncio.gather(*calls)
    return winner is not None


async def floor_batch(
    queue_url: str,
    agent_urls: dict[str, str],
    jobs: int,
    concurrency: int,
    call: Call,
    events: EventSink,
) -> int:
    """Take up to `jobs` OPEN tasks and get them done, `concurrency` at once; completed count."""
    endpoints = [AgentEndpoint(name, name, url) for name, url in agent_urls.items()]
    async with (
        RemoteQueueClient(queue_url, TOKEN) as queue,
        AgentClient(retry=RetryPolicy(attempts=0)) as agents,
    ):
        ids: list[str] = []
        cursor: str | None = None
        while len(ids) < jobs:
            page = await queue.list_tasks(JobStatus.OPEN, limit=100, cursor=cursor)
            ids += [t.id for t in page.valid][: jobs - len(ids)]
            cursor = page.next_cursor
            if cursor is None:
                break
        gate = asyncio.Semaphore(concurrency)

        async def job(task_id: str) -> bool:
            async with gate:
                return await _one_job(queue, agents, endpoints, task_id, call, events)

        return sum(await asyncio.gather(*(job(i) for i in ids)))


@flow(name="prefect-floor")
async def prefect_floor(
    queue_url: str, agent_urls: dict[str, str], jobs: int, concurrency: int, with_events: bool
) -> int:
    from agent_dispatch.bootstrap.prefect_events import PrefectEvents

    events = PrefectEvents() if with_events else NullEvents()
    return await floor_batch(queue_url, agent_urls, jobs, concurrency, task_run_call, events)


def run_floor(
    mode: str, queue_url: str, agent_urls: dict[str, str], jobs: int, concurrency: int
) -> int:
    """One batch through a floor, in a fresh event loop as a flow run would have."""
    if mode == "raw":
        return asyncio.run(
            floor_batch(queue_url, agent_urls, jobs, concurrency, plain_call, NullEvents())
        )
    done: int = asyncio.run(
        prefect_floor(queue_url, agent_urls, jobs, concurrency, mode == "events")  # type: ignore[arg-type]
    )
    return done
