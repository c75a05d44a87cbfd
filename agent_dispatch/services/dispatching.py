"""One leased job from plan to end: plan -> take -> race -> finish, written once.

The steps are injected (`JobSteps`): the dispatch flow passes Prefect task runs (traced), the
lean path and tests pass the plain services (`PlainSteps`). Either way the same services run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from typing import Protocol

from pydantic import BaseModel

from agent_dispatch.domain.lease import LeaseLost
from agent_dispatch.domain.lifecycle import PlanKind
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.deps import Deps
from agent_dispatch.services.finishing import JobEnd, end_unstarted, finish_job, tell_winner
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.planning import Plan, plan_job, release_job
from agent_dispatch.services.racing import RaceResult, plain_calls, race
from agent_dispatch.services.taking import NotTaken, Taken, take_job


class NotFinished(enum.StrEnum):
    """Outcomes of a job in one run that are not a job status."""

    UNSERVED = "UNSERVED"  # no eligible agent now: released, still OPEN on the queue
    CONFLICT = "CONFLICT"  # another consumer took it (409)
    LEASE_LOST = "LEASE_LOST"  # cancelled or rescued while agents worked
    CRASHED = "CRASHED"  # a bug in this run; the sweep rescues the job


NOT_TAKEN = frozenset({NotFinished.UNSERVED, NotFinished.CONFLICT})


class JobLine(BaseModel):
    """What one run did to one job."""

    queue_task_id: str
    job_id: str | None = None
    outcome: str  # a JobStatus, or a NotFinished
    winner: str | None = None
    winner_latency_ms: float | None = None
    detail: str | None = None


class JobSteps(Protocol):
    """The lifecycle steps of one job, however they are run."""

    async def plan(self, claim: Claim, round_no: int) -> Plan: ...

    async def take(self, claim: Claim, plan: Plan) -> Taken | NotTaken: ...

    async def race(self, taken: Taken) -> RaceResult: ...

    async def finish(
        self,
        taken: Taken,
        winner_row_id: str | None,
        first_at: dt.datetime | None,
        queue_told: bool,
    ) -> JobEnd: ...

    async def release(self, claim: Claim, reason: str) -> None: ...

    async def end(self, claim: Claim, status: JobStatus, reason: str) -> JobEnd: ...


class PlainSteps:
    """The steps as plain service calls (no task runs)."""

    def __init__(
        self, deps: Deps, flow_run_id: str | None = None, task_run_id: str | None = None
    ) -> None:
        self.deps = deps
        self.flow_run_id = flow_run_id
        self.task_run_id = task_run_id  # lean mode: the one task run of the whole job

    async def plan(self, claim: Claim, round_no: int) -> Plan:
        return await plan_job(self.deps, claim)

    async def take(self, claim: Claim, plan: Plan) -> Taken | NotTaken:
        return await take_job(self.deps, claim, plan, self.flow_run_id)

    async def race(self, taken: Taken) -> RaceResult:
        return await race(
            self.deps,
            taken,
            plain_calls(self.deps, self.task_run_id),
            on_decided=tell_winner(self.deps, taken),
            task_run_id=self.task_run_id,
        )

    async def finish(
        self,
        taken: Taken,
        winner_row_id: str | None,
        first_at: dt.datetime | None,
        queue_told: bool,
    ) -> JobEnd:
        return await finish_job(self.deps, taken, winner_row_id, first_at, queue_told)

    async def release(self, claim: Claim, reason: str) -> None:
        await release_job(self.deps, claim, reason)

    async def end(self, claim: Claim, status: JobStatus, reason: str) -> JobEnd:
        return await end_unstarted(self.deps, claim, status, reason)


async def _plan_waiting_for_capacity(
    steps: JobSteps, claim: Claim, capacity_wait: float
) -> tuple[Plan, Taken | NotTaken | None]:
    """Plan and take; agents that fit but are busy free up within the run: wait, briefly."""
    waited, round_no = 0.0, 1
    while True:
        plan = await steps.plan(claim, round_no)
        busy, why = plan.busy, plan.summary
        if plan.kind is PlanKind.DISPATCH:
            taken = await steps.take(claim, plan)
            if taken is not NotTaken.CAPACITY_GONE:
                return plan, taken
            busy, why = 1, f"{NotTaken.CAPACITY_GONE} ({plan.summary})"
        elif plan.kind is not PlanKind.UNSERVED:
            return plan, None
        if not busy or waited >= capacity_wait:
            return Plan(PlanKind.UNSERVED, summary=why), None
        pause = min(0.2 * 2 ** (round_no - 1), 2.0, capacity_wait - waited)
        await asyncio.sleep(pause)
        waited, round_no = waited + pause, round_no + 1


async def dispatch_one(steps: JobSteps, claim: Claim, capacity_wait: float) -> JobLine:
    """Drive one leased job to an end (or back to the queue) with the given steps."""
    qid, job_id = claim.spec.queue_task_id, claim.job_id
    try:
        plan, taken = await _plan_waiting_for_capacity(steps, claim, capacity_wait)
        if plan.kind is PlanKind.UNSERVED:
            await steps.release(claim, plan.summary)
            return JobLine(
                queue_task_id=qid, job_id=job_id, outcome=NotFinished.UNSERVED, detail=plan.summary
            )
        if plan.kind in (PlanKind.EXPIRED, PlanKind.SPENT):
            status = JobStatus.EXPIRED if plan.kind is PlanKind.EXPIRED else JobStatus.FAILED
            await steps.end(claim, status, plan.summary)
            return JobLine(queue_task_id=qid, job_id=job_id, outcome=status, detail=plan.summary)
        if not isinstance(taken, Taken):
            return JobLine(queue_task_id=qid, outcome=NotFinished.CONFLICT, detail=str(taken))
        result = await steps.race(taken)
        if result.lease_lost:
            raise LeaseLost(job_id)
        end = await steps.finish(
            taken, result.winner_row_id, result.first_result_at, result.queue_told
        )
    except LeaseLost:
        return JobLine(
            queue_task_id=qid,
            job_id=job_id,
            outcome=NotFinished.LEASE_LOST,
            detail="job cancelled or rescued while agents worked; this run stopped writing it",
        )
    return JobLine(
        queue_task_id=qid,
        job_id=job_id,
        outcome=end.status,
        winner=end.winner,
        winner_latency_ms=end.winner_latency_ms,
        detail=end.error or end.report_problem,
    )
