"""The dispatch flow: queue -> match -> agents in parallel -> result -> stats."""

from __future__ import annotations

import asyncio
import dataclasses

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from agent_dispatch.wiring import get_runtime
from clients.errors import QueueError
from domain.statuses import JobStatus
from flows.progress import Progress
from flows.race import race
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
from tasks.queue_io import fetch_open_page, reject_items


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


@flow(name="dispatch", log_prints=True)
async def dispatch_flow(params: DispatchParams | None = None) -> DispatchSummary:
    """Take OPEN queue tasks page after page and drive every taken job to a terminal status."""
    params = params or DispatchParams()
    rt = get_runtime()
    logger = get_run_logger()
    page_size = params.page_size or rt.settings.queue_page_size
    budget = params.max_jobs
    summary = DispatchSummary()
    gate = asyncio.Semaphore(rt.settings.job_concurrency)
    running: list[asyncio.Task[JobLine]] = []
    progress = await Progress.start()
    run_id = str(flow_run.id) if flow_run.id else None

    async def guarded(claim: Claim) -> JobLine:
        async with gate:
            try:
                line = await dispatch_one(claim, run_id, rt.settings.capacity_wait_seconds)
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
        running.extend(asyncio.create_task(guarded(c)) for c in claims)
        progress.add(len(claims))

    try:
        start(await claim_rescued(budget or 1000))
        cursor, page_no = None, 1
        while budget is None or len(running) < budget:
            page = await fetch_open_page(cursor, page_size, page_no)
            if page.error is not None:
                raise QueueError(page.error)
            if page.rejected:
                summary.rejected += len(page.rejected)
                await reject_items(page.rejected)
            remaining = None if budget is None else budget - len(running)
            start(
                await intake_jobs(page.tasks, len(page.tasks) if remaining is None else remaining)
            )
            if not page.next_cursor:
                break
            cursor, page_no = page.next_cursor, page_no + 1
    except QueueError as exc:
        summary.stopped_reason = f"remote queue: {exc}"
        logger.error("stopped taking jobs: %s (jobs already taken will finish)", exc)
    finally:
        lines = await asyncio.gather(*running)
        summary.jobs.extend(lines)
        await progress.finish()
        await rt.aclose_clients()
    summary.taken = sum(1 for j in summary.jobs if j.outcome not in ("UNSERVED", "CONFLICT"))
    for line in summary.jobs:
        logger.info(
            "%s -> %s%s%s",
            line.queue_task_id,
            line.outcome,
            f" by {line.winner} in {line.winner_latency_ms:.0f} ms" if line.winner else "",
            f" ({line.detail})" if line.detail else "",
        )
    return summary
