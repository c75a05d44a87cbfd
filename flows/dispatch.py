"""The dispatch flow: queue -> match -> agents in parallel -> result -> stats."""

from __future__ import annotations

import asyncio
import dataclasses

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from agent_dispatch.wiring import get_runtime
from clients.errors import QueueError
from clients.queue import RejectedItem
from domain.lease import LeaseLost
from domain.statuses import JobStatus
from flows.progress import Progress
from flows.race import race
from services.drain import Drain, Listing
from tasks.finish import JobEnd, finish_job
from tasks.job_steps import (
    CAPACITY_GONE,
    Claim,
    PlanKind,
    Taken,
    claim_rescued,
    end_job,
    intake_jobs,
    plan_job,
    release_job,
    take_job,
)
from tasks.queue_io import Incoming, fetch_open_page, reject_items


class DispatchParams(BaseModel):
    """Parameters of one dispatch run (rendered as a form in the Prefect UI)."""

    max_jobs: int | None = Field(default=None, ge=1, description="Stop after taking this many")
    page_size: int | None = Field(default=None, ge=1, le=500, description="Queue page size")


class JobLine(BaseModel):
    queue_task_id: str
    job_id: str | None = None
    outcome: str  # a JobStatus, or UNSERVED / CONFLICT / LEASE_LOST
    winner: str | None = None
    winner_latency_ms: float | None = None
    detail: str | None = None


class DispatchSummary(BaseModel):
    taken: int = 0
    rejected: int = 0
    jobs: list[JobLine] = Field(default_factory=list)
    stopped_reason: str | None = None
    passes: int = 0  # passes over the queue from its first page
    pages: int = 0  # queue pages read

    def count(self, outcome: str) -> int:
        return sum(1 for j in self.jobs if j.outcome == outcome)


async def dispatch_one(claim: Claim, flow_run_id: str | None, capacity_wait: float) -> JobLine:
    """Plan, take, race and finish one leased job (composition only)."""
    qid = claim.spec.queue_task_id
    waited, round_no = 0.0, 1
    while True:
        plan = await plan_job(claim, round_no)
        if plan.kind is PlanKind.DISPATCH:
            taken = await take_job(claim, plan, flow_run_id)
            if taken != CAPACITY_GONE:
                break
            plan = dataclasses.replace(plan, kind=PlanKind.UNSERVED, busy=1)
        # Agents that fit but are busy free up within the run: wait for them, briefly.
        if plan.kind is not PlanKind.UNSERVED or not plan.busy or waited >= capacity_wait:
            break
        pause = min(0.2 * 2 ** (round_no - 1), 2.0, capacity_wait - waited)
        await asyncio.sleep(pause)
        waited, round_no = waited + pause, round_no + 1
    if plan.kind is PlanKind.UNSERVED:
        await release_job(claim, plan.summary)
        return JobLine(
            queue_task_id=qid, job_id=claim.job_id, outcome="UNSERVED", detail=plan.summary
        )
    if plan.kind in (PlanKind.EXPIRED, PlanKind.SPENT):
        status = JobStatus.EXPIRED if plan.kind is PlanKind.EXPIRED else JobStatus.FAILED
        await end_job(claim, status, plan.summary)
        return JobLine(
            queue_task_id=qid, job_id=claim.job_id, outcome=status.value, detail=plan.summary
        )
    if not isinstance(taken, Taken):
        return JobLine(queue_task_id=qid, job_id=None, outcome="CONFLICT", detail=taken)
    result = await race(taken)
    if result.lease_lost:
        return JobLine(
            queue_task_id=qid,
            job_id=claim.job_id,
            outcome="LEASE_LOST",
            detail="job cancelled or rescued while agents worked; this run stopped writing it",
        )
    end: JobEnd = await finish_job(taken, result.winner_row_id, result.first_result_at)
    return JobLine(
        queue_task_id=qid,
        job_id=claim.job_id,
        outcome=end.status.value,
        winner=end.winner,
        winner_latency_ms=end.winner_latency_ms,
        detail=end.error or end.report_problem,
    )


NOT_TAKEN = ("UNSERVED", "CONFLICT")

Listed = Incoming | RejectedItem


def listed_key(item: Listed) -> tuple[str, str]:
    """How the drain knows an item again within a run: its queue task id, else a hash."""
    return ("id", item.spec.queue_task_id) if isinstance(item, Incoming) else item.key


@flow(name="dispatch", log_prints=True)
async def dispatch_flow(params: DispatchParams | None = None) -> DispatchSummary:
    """Take OPEN queue tasks page after page and drive every taken job to a terminal status.

    The queue is drained in passes from its first page (services.drain): its cursors may
    shift under our own takes, so the run ends only after a whole pass finds no task it has
    not judged yet. Jobs are leased only as fast as they can be worked on (JOB_CONCURRENCY at
    once): a run never sits on leases it is not renewing, and concurrent workers share the
    queue.
    """
    params = params or DispatchParams()
    rt = get_runtime()
    logger = get_run_logger()
    page_size = params.page_size or rt.settings.queue_page_size
    concurrency = rt.settings.job_concurrency
    summary = DispatchSummary()
    active: set[asyncio.Task[JobLine]] = set()
    lines: list[JobLine] = []
    progress = await Progress.start()
    run_id = str(flow_run.id) if flow_run.id else None

    async def guarded(claim: Claim) -> JobLine:
        try:
            line = await dispatch_one(claim, run_id, rt.settings.capacity_wait_seconds)
        except LeaseLost as exc:
            line = JobLine(
                queue_task_id=claim.spec.queue_task_id,
                job_id=claim.job_id,
                outcome="LEASE_LOST",
                detail=str(exc),
            )
        except Exception as exc:  # one job's crash must not sink the run; the sweep rescues it
            logger.exception("job %s crashed", claim.spec.queue_task_id)
            line = JobLine(
                queue_task_id=claim.spec.queue_task_id,
                job_id=claim.job_id,
                outcome="CRASHED",
                detail=str(exc),
            )
        await progress.job_done(line.outcome)
        return line

    def start(claims: list[Claim]) -> None:
        active.update(asyncio.create_task(guarded(c)) for c in claims)
        progress.add(len(claims))

    async def settle(block: bool) -> None:
        """Collect finished jobs; with block, wait until at least one finishes."""
        if not active:
            return
        done, _ = await asyncio.wait(
            active, timeout=None if block else 0, return_when=asyncio.FIRST_COMPLETED
        )
        for task_ in done:
            active.discard(task_)
            lines.append(task_.result())

    def budget_left() -> int | None:
        if params.max_jobs is None:
            return None
        taken = len(active) + sum(1 for j in lines if j.outcome not in NOT_TAKEN)
        return params.max_jobs - taken

    page_no = 0

    async def fetch(cursor: str | None) -> Listing[Listed]:
        nonlocal page_no
        page_no += 1
        page = await fetch_open_page(cursor, page_size, page_no)
        if page.error is not None:
            raise QueueError(page.error)
        return Listing([*page.tasks, *page.rejected], page.next_cursor)

    async def reject(items: tuple[RejectedItem, ...]) -> None:
        if items:
            summary.rejected += len(items)
            await reject_items(items)

    drain: Drain[Listed] = Drain(fetch, listed_key)
    new_items = drain.batches()
    try:
        start(await claim_rescued(min(concurrency, params.max_jobs or concurrency)))
        backlog: list[Incoming] = []
        while True:
            await settle(block=False)
            left = budget_left()
            if left is not None and left <= 0:
                break
            free = concurrency - len(active)
            if free <= 0:
                await settle(block=True)
                continue
            if not backlog:
                fresh = await anext(new_items, None)
                if fresh is None:
                    break  # a whole pass over the queue found nothing new
                await reject(tuple(i for i in fresh if isinstance(i, RejectedItem)))
                backlog.extend(i for i in fresh if isinstance(i, Incoming))
                continue
            want = free if left is None else min(free, left)
            batch, backlog = backlog[:want], backlog[want:]
            intake = await intake_jobs(tuple(batch), len(batch))
            await reject(intake.refused)
            start(intake.claims)
    except QueueError as exc:
        summary.stopped_reason = f"remote queue: {exc}"
        logger.error("stopped taking jobs: %s (jobs already taken will finish)", exc)
    finally:
        await new_items.aclose()
        while active:
            await settle(block=True)
        await progress.finish()
        await rt.aclose_clients()
    summary.passes, summary.pages = drain.passes, drain.pages
    summary.jobs = sorted(lines, key=lambda j: j.queue_task_id)
    summary.taken = sum(1 for j in summary.jobs if j.outcome not in NOT_TAKEN)
    logger.info("read %d queue pages in %d passes", drain.pages, drain.passes)
    for line in summary.jobs:
        logger.info(
            "%s -> %s%s%s",
            line.queue_task_id,
            line.outcome,
            f" by {line.winner} in {line.winner_latency_ms:.0f} ms" if line.winner else "",
            f" ({line.detail})" if line.detail else "",
        )
    return summary
