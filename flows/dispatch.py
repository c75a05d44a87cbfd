"""The dispatch flow: queue pages -> store and lease -> a bounded pool of jobs, each driven
plan -> take -> race -> finish by `dispatch_one` with every step a Prefect task run."""

from __future__ import annotations

from collections.abc import AsyncIterator

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.clients.errors import QueueError
from agent_dispatch.flows.progress import Progress
from agent_dispatch.flows.workflow import workflow_flow
from agent_dispatch.services.dispatching import NOT_TAKEN, JobLine, dispatch_one
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.job_pool import JobPool
from agent_dispatch.services.queue_io import Page
from agent_dispatch.tasks.job_steps import TracedSteps, lease_rescued, store_and_lease
from agent_dispatch.tasks.queue_io import fetch_open_page, reject_items


class DispatchParams(BaseModel):
    """Parameters of one dispatch run (rendered as a form in the Prefect UI)."""

    max_jobs: int | None = Field(default=None, ge=1, description="Stop after taking this many")
    page_size: int | None = Field(default=None, ge=1, le=500, description="Queue page size")


class DispatchSummary(BaseModel):
    taken: int = 0
    rejected: int = 0
    jobs: list[JobLine] = Field(default_factory=list)
    stopped_reason: str | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for j in self.jobs if j.outcome == outcome)


async def open_pages(page_size: int) -> AsyncIterator[Page]:
    """Pages of OPEN tasks, one task run each; raises QueueError when the queue fails."""
    cursor, page_no = None, 0
    while True:
        page_no += 1
        page = await fetch_open_page(cursor, page_size, page_no)
        if page.error is not None:
            raise QueueError(page.error)
        yield page
        if not page.next_cursor:
            return
        cursor = page.next_cursor


async def take_from_queue(
    pool: JobPool, params: DispatchParams, page_size: int, summary: DispatchSummary
) -> None:
    """Feed the pool from the queue, page by page, as fast as it has room; stop at max_jobs."""
    async for page in open_pages(page_size):
        if page.rejected:
            summary.rejected += len(page.rejected)
            await reject_items(page.rejected)
        backlog = list(page.tasks)
        while backlog:
            room = await pool.room(params.max_jobs)
            if room == 0:
                return
            batch, backlog = backlog[:room], backlog[room:]
            pool.start(await store_and_lease(tuple(batch), len(batch)))


@flow(name="dispatch", log_prints=True)
async def dispatch_flow(params: DispatchParams | None = None) -> DispatchSummary:
    """Take OPEN queue tasks and drive every taken job to a terminal status.

    Jobs are leased only as fast as they can be worked on (JOB_CONCURRENCY at once): a run
    never sits on leases it is not renewing, and concurrent workers share the queue.
    """
    params = params or DispatchParams()
    rt = get_runtime()
    s = rt.settings
    logger = get_run_logger()
    progress = await Progress.start()
    steps = TracedSteps(str(flow_run.id) if flow_run.id else None)

    async def run(claim: Claim) -> JobLine:
        if claim.spec.workflow:  # a workflow's parent: its steps are dispatched in a subflow
            return await workflow_flow(claim)
        return await dispatch_one(steps, claim, s.capacity_wait_seconds)

    pool = JobPool(s.job_concurrency, run, progress)
    summary = DispatchSummary()
    try:
        pool.start(await lease_rescued(await pool.room(params.max_jobs)))
        await take_from_queue(pool, params, params.page_size or s.queue_page_size, summary)
    except QueueError as exc:
        summary.stopped_reason = f"remote queue: {exc}"
        logger.error("stopped taking jobs: %s (jobs already taken will finish)", exc)
    finally:
        summary.jobs = await pool.drain()
        await progress.finish()
        await rt.aclose_clients()
    summary.taken = sum(1 for j in summary.jobs if j.outcome not in NOT_TAKEN)
    for line in summary.jobs:
        logger.info(
            "%s -> %s%s%s",
            line.queue_task_id,
            line.outcome,
            f" by {line.winner} in {line.winner_latency_ms:.0f} ms" if line.winner else "",
            f" ({line.detail})" if line.detail else "",
        )
    return summary
