"""The parent job of a workflow run: the only part the queue hears about.

Taken on the queue when the run begins, IN_PROGRESS at its first step, and ended COMPLETED
with the workflow's output, FAILED naming the step, or EXPIRED at its `expiresAt`. Stopping
a run (its failure, or an operator's cancel) cancels the steps still running and tells their
agents to stop.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agent_dispatch.db.sweep_repository import AbandonedCall
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import LeaseLost
from agent_dispatch.domain.lifecycle import PlanKind, precheck
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.domain.workflow import WorkflowDef, from_document
from agent_dispatch.domain.workflow_run import Ending
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.finishing import JobEnd, end_unstarted
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.queue_io import report_status
from agent_dispatch.services.sweep import stop_abandoned

CANCEL_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class Begun:
    workflow: WorkflowDef
    starts: int  # 1 for a fresh run; more when resumed after a lost worker


class NotBegun(Exception):
    """The task was taken elsewhere (409) or the queue failed: left for the sweep."""


async def begin(deps: Deps, claim: Claim) -> Begun | JobEnd:
    """Take the task (when new), snapshot the workflow, count the start; or end it at once."""
    s, qid, name = deps.settings, claim.spec.queue_task_id, claim.spec.workflow or ""

    def check(uow: UnitOfWork) -> tuple[str, str] | dict[str, Any]:
        job = uow.jobs.get_leased(claim.lease)
        ending = precheck(
            claim.spec, JobStatus(job.status), job.attempts, s.job_max_attempts, utcnow()
        )
        if ending is not None:
            status = "EXPIRED" if ending[0] is PlanKind.EXPIRED else "FAILED"
            return status, ending[1]
        snapshot = uow.workflows.run_definition(job.id)
        if snapshot is not None:
            return snapshot
        registered = uow.workflows.get(name)
        if registered is None:
            return "FAILED", f"unknown workflow {name!r}"
        return registered.definition

    found = await in_transaction(deps, check)
    if isinstance(found, tuple):
        status, why = JobStatus(found[0]), found[1]
        if claim.status is not JobStatus.OPEN:  # a resumed run that ends now: steps stop too
            await stop_steps(deps, claim.job_id, why)
        elif status is JobStatus.FAILED:  # a queue job fails only once it was taken
            await _take(deps, claim)
        return await end_unstarted(deps, claim, status, why)
    if claim.status is JobStatus.OPEN:
        await _take(deps, claim)
    definition = found

    def start(uow: UnitOfWork) -> int:
        return uow.workflows.start_run(claim.lease, name, definition, utcnow()).starts

    starts = await in_transaction(deps, start)
    deps.events.job_changed(claim.job_id, qid, "WORKFLOW_STARTED", workflow=name, starts=starts)
    return Begun(from_document(definition), starts)


async def _take(deps: Deps, claim: Claim) -> None:
    qid = claim.spec.queue_task_id
    if not await in_transaction(deps, lambda uow: uow.jobs.holds(claim.lease)):
        raise LeaseLost(claim.job_id)
    try:
        taken = await deps.queue().take(qid)
    except Exception:
        # The take may have landed: expire the lease so the sweep asks the queue.
        await in_transaction(deps, lambda uow: uow.jobs.expire_lease(claim.lease, utcnow()))
        raise
    if not taken:
        await in_transaction(deps, lambda uow: uow.jobs.expire_lease(claim.lease, utcnow()))
        raise NotBegun(f"{qid} was taken by another consumer (409)")
    await in_transaction(
        deps,
        lambda uow: uow.jobs.transition(
            claim.lease, JobStatus.DISTRIBUTED, utcnow(), queue_status=JobStatus.DISTRIBUTED.value
        ),
    )
    deps.events.job_changed(claim.job_id, qid, "DISTRIBUTED")


async def mark_in_progress(deps: Deps, claim: Claim) -> None:
    """The first step is starting: the parent goes IN_PROGRESS, on the queue too."""

    def current(uow: UnitOfWork) -> tuple[str, str]:
        job = uow.jobs.get_leased(claim.lease)
        return job.status, job.queue_status or job.status

    status, expected = await in_transaction(deps, current)
    if status != JobStatus.DISTRIBUTED:
        return
    qid = claim.spec.queue_task_id
    problem = await report_status(deps, qid, JobStatus.IN_PROGRESS, expected)
    told = JobStatus.IN_PROGRESS.value if problem is None else expected
    await in_transaction(
        deps,
        lambda uow: uow.jobs.transition(
            claim.lease, JobStatus.IN_PROGRESS, utcnow(), queue_status=told
        ),
    )
    deps.events.job_changed(claim.job_id, qid, "IN_PROGRESS")


async def end(deps: Deps, claim: Claim, ending: Ending) -> JobEnd:
    """End the parent as the run decided and report it (the outbox resends on failure)."""
    qid = claim.spec.queue_task_id

    def finish(uow: UnitOfWork) -> str:
        job, now = uow.jobs.get_leased(claim.lease), utcnow()
        expected = job.queue_status or job.status
        if ending.status is JobStatus.COMPLETED and job.status == JobStatus.DISTRIBUTED:
            uow.jobs.transition(claim.lease, JobStatus.IN_PROGRESS, now)  # every step skipped
        uow.jobs.transition(
            claim.lease, ending.status, now, result=ending.output, error=ending.error
        )
        uow.workflows.finish_run(claim.job_id, now)
        return expected

    expected = await in_transaction(deps, finish)
    deps.events.job_changed(claim.job_id, qid, ending.status.value, error=ending.error)
    problem = await report_status(
        deps, qid, ending.status, expected, result=ending.output, error=ending.error
    )
    if problem is None:
        await in_transaction(
            deps, lambda uow: uow.jobs.mark_queue_status(claim.job_id, ending.status)
        )
    return JobEnd(qid, claim.job_id, ending.status, error=ending.error, report_problem=problem)


def cancel_steps(
    uow: UnitOfWork, parent_job_id: str, reason: str, timeout_ms: int
) -> list[AbandonedCall]:
    """Cancel every unfinished step job: leases revoked (their runs stop writing), open agent
    rows closed; returns the calls still running at an agent, to be told to stop."""
    now, calls = utcnow(), []
    for step in uow.workflows.steps(parent_job_id):
        if JobStatus(step.status).terminal:
            continue
        uow.jobs.transition_unleased(step.id, JobStatus.CANCELLED, now, error=reason)
        calls += uow.sweep.close_open_rows(step.id, now, timeout_ms, reason)
    return calls


async def stop_steps(deps: Deps, parent_job_id: str, reason: str) -> int:
    """Cancel a run's unfinished steps and tell their agents; returns the calls stopped."""
    timeout_ms = deps.settings.default_agent_timeout
    calls = await in_transaction(
        deps, lambda uow: cancel_steps(uow, parent_job_id, reason, timeout_ms)
    )
    await stop_abandoned(deps, tuple(calls))
    return len(calls)
