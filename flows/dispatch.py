"""The dispatch flow: drained queue pages -> store and lease -> a bounded pool of jobs, each
driven plan -> take -> race -> finish by `dispatch_one`: every agent call a Prefect task run
(DISPATCH_MODE=traced), every step one too (steps), or one `dispatch-job` task run per job
(lean); see tasks/job_steps.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Failed
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.clients.errors import QueueError
from agent_dispatch.clients.queue import MAX_PAGE_LIMIT, RejectedItem
from agent_dispatch.flows.progress import Progress
from agent_dispatch.flows.reports import (
    database_line,
    param,
    publish_dispatch_jobs,
    queue_line,
    run_name,
)
from agent_dispatch.flows.workflow import workflow_flow
from agent_dispatch.services.dispatching import NOT_TAKEN, JobLine, NotFinished, dispatch_one
from agent_dispatch.services.drain import Drain, Listing
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.job_pool import JobPool
from agent_dispatch.services.queue_io import Incoming
from agent_dispatch.tasks.job_steps import (
    TaskRunSteps,
    TracedSteps,
    flow_steps,
    lean_job,
    lease_rescued,
)
from agent_dispatch.tasks.queue_io import fetch_open_page, reject_items
from agent_dispatch.tasks.run_memory import forget_ended_results


class DispatchParams(BaseModel):
    """Parameters of one dispatch run (rendered as a form in the Prefect UI)."""

    model_config = ConfigDict(frozen=True)  # the flow's default instance is shared

    max_jobs: int | None = Field(default=None, ge=1, description="Stop after taking this many")
    page_size: int | None = Field(default=None, ge=1, le=500, description="Queue page size")


class DispatchSummary(BaseModel):
    taken: int = 0
    rejected: int = 0
    # The lines of the last jobs to end (at most KEPT_LINES, services/job_pool.py), by queue
    # task id: bounded so a long run's memory stays flat. `outcomes` counts every job.
    jobs: list[JobLine] = Field(default_factory=list)
    outcomes: dict[str, int] = Field(default_factory=dict)
    stopped_reason: str | None = None
    passes: int = 0  # passes over the queue from its first page
    # OPEN tasks left alone: no agent could serve them and the agents are unchanged since.
    waiting: int = 0
    pages: int = 0  # queue pages read

    def count(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)

    def headline(self) -> str:
        counts = ", ".join(f"{n} {o.lower()}" for o, n in sorted(self.outcomes.items()))
        line = f"{self.taken} taken, {self.rejected} rejected: {counts or 'nothing to do'}"
        line += f"; {self.waiting} still unservable" if self.waiting else ""
        return line + (f"; stopped: {self.stopped_reason}" if self.stopped_reason else "")


Listed = Incoming | RejectedItem


def listed_key(item: Listed) -> tuple[str, str]:
    """How the drain knows an item again within a run: its queue task id, else a hash."""
    return ("id", item.spec.queue_task_id) if isinstance(item, Incoming) else item.key


async def take_from_queue(
    pool: JobPool,
    params: DispatchParams,
    drain: Drain[Listed],
    summary: DispatchSummary,
    steps: TracedSteps | TaskRunSteps,
) -> None:
    """Feed the pool with every new queue item, as fast as it has room; stop at max_jobs.

    The queue is drained in passes from its first page (services/drain.py): its cursors may
    shift under our own takes, so the run ends only after a whole pass finds nothing new.
    Each page is stored at once; tasks no agent can serve are judged there and left waiting
    (a line each when judged now, a count when the agents are unchanged since they were).
    """

    async def reject(items: Iterable[RejectedItem]) -> None:
        if items := tuple(items):
            summary.rejected += len(items)
            await reject_items(items)

    async with contextlib.aclosing(drain.batches()) as batches:
        async for fresh in batches:
            await reject(i for i in fresh if isinstance(i, RejectedItem))
            backlog = [i for i in fresh if isinstance(i, Incoming)]
            started = 0
            while backlog:
                room = await pool.room(params.max_jobs)
                if room == 0:
                    return
                intake = await steps.intake(tuple(backlog), room)
                await reject(intake.refused)
                summary.waiting += intake.waiting
                pool.record(
                    JobLine(
                        queue_task_id=u.queue_task_id,
                        job_id=u.job_id,
                        outcome=NotFinished.UNSERVED,
                        detail=u.reason,
                    )
                    for u in intake.unserved
                )
                pool.start(intake.claims)
                started += len(intake.claims)
                pending = set(intake.pending)
                backlog = [i for i in backlog if i.spec.queue_task_id in pending]
            if not started:  # nothing to dispatch on this page: read the next in larger pages
                drain.quiet()


def _max_jobs(parameters: Mapping[str, Any]) -> str:
    limit = param(parameters, "params", "max_jobs")
    return f"max {limit} jobs" if limit else ""


@flow(name="dispatch", log_prints=True, flow_run_name=run_name("dispatch", _max_jobs))
async def dispatch_flow(
    params: DispatchParams = DispatchParams(),  # noqa: B008 (frozen; prefills the UI's form)
) -> DispatchSummary | State[DispatchSummary]:
    """Take OPEN queue tasks and drive every taken job to a terminal status.

    Jobs are leased only as fast as they can be worked on (JOB_CONCURRENCY at once): a run
    never sits on leases it is not renewing, and concurrent workers share the queue.

    A run that could not work (the queue unreachable or refusing the token, the database
    down) ends Failed with that one line, its summary as the state's data: an automation or
    alert on failed runs sees the outage, and `agent-dispatch run` still prints the summary.
    """
    params = params or DispatchParams()
    rt = get_runtime()
    s = rt.settings
    rt.hold_clients()  # closed by the last run of this process to end
    logger = get_run_logger()
    progress = await Progress.start()
    run_id = str(flow_run.id) if flow_run.id else None
    steps = flow_steps(run_id)

    async def run(claim: Claim) -> JobLine:
        if claim.spec.workflow:  # a workflow's parent: its steps are dispatched in a subflow
            return await workflow_flow(claim, pool.slots)  # and share the run's race slots
        if s.dispatch_mode == "lean":  # one task run per job, its steps plain coroutines
            return await lean_job(claim, s.capacity_wait_seconds, run_id)
        return await dispatch_one(steps, claim, s.capacity_wait_seconds)

    def log_line(line: JobLine) -> None:
        """Each job's line as it ends: the log has every job, however many the run keeps."""
        forget_ended_results()  # keeps memory flat over a long run (tasks/run_memory.py)
        logger.info(
            "%s -> %s%s%s",
            line.queue_task_id,
            line.outcome,
            f" by {line.winner} in {line.winner_latency_ms:.0f} ms" if line.winner else "",
            f" ({line.detail})" if line.detail else "",
        )

    pool = JobPool(s.job_concurrency, run, progress, on_line=log_line)
    summary = DispatchSummary()
    page_size = params.page_size or s.queue_page_size

    async def fetch(cursor: str | None) -> Listing[Listed]:
        page = await fetch_open_page(cursor, drain.limit, drain.pages)
        if page.error is not None:
            raise QueueError(page.error)
        return Listing([*page.tasks, *page.rejected], page.next_cursor)

    drain: Drain[Listed] = Drain(
        fetch,
        listed_key,
        page_size=page_size,
        max_page_size=MAX_PAGE_LIMIT,
        own_writes=rt.listing_writes,  # our takes shift offset cursors: see services/drain.py
    )
    try:
        pool.start(await lease_rescued(await pool.room(params.max_jobs)))
        await take_from_queue(pool, params, drain, summary, steps)
    except QueueError as exc:
        summary.stopped_reason = queue_line(exc)
        logger.error("stopped taking jobs: %s (jobs already taken will finish)", exc)
    except OperationalError as exc:  # the database refused a connection or went away
        summary.stopped_reason = database_line(exc)
        logger.error("stopped taking jobs: %s", summary.stopped_reason)
    finally:
        summary.jobs = await pool.drain()
        await progress.finish()
        await rt.aclose_clients()
    summary.outcomes = dict(pool.outcomes)
    summary.taken = sum(n for o, n in summary.outcomes.items() if o not in NOT_TAKEN)
    summary.passes, summary.pages = drain.passes, drain.pages
    logger.info("read %d queue pages in %d passes", drain.pages, drain.passes)
    await publish_dispatch_jobs(summary.jobs, summary.headline(), sum(summary.outcomes.values()))
    if summary.stopped_reason:
        return Failed(message=summary.stopped_reason, data=summary)
    return summary
