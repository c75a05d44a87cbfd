"""One Prefect task run per agent call: WORKING -> COMPLETED | FAILED | TIMEOUT | CANCELLED."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.states import Cancelled, State

from agent_dispatch.wiring import get_runtime
from clients.agent import AgentEndpoint
from clients.errors import AgentCallError
from clients.wire import JobExecutionData
from db.distribution_repository import Assignment
from db.models import utcnow
from db.uow import UnitOfWork
from domain.lease import Lease, LeaseLost
from domain.model import AgentOutcome
from domain.statuses import AgentRunStatus, FailureKind, IllegalTransition
from tasks import events
from tasks.dbio import in_transaction

CANCEL_CALL_TIMEOUT = 5.0


class AgentCallFailed(Exception):
    """Raised so the task run shows Failed in the UI; carries the outcome for the flow."""

    def __init__(self, agent_name: str, outcome: AgentOutcome) -> None:
        super().__init__(f"{agent_name}: {outcome.status.value} ({outcome.error})")
        self.outcome = outcome


@dataclasses.dataclass(frozen=True, slots=True)
class CallContext:
    """What one agent task needs; plain data, safe to hand to a Prefect task."""

    lease: Lease
    job_id: str
    queue_task_id: str
    distribution_id: str
    assignment: Assignment
    request: JobExecutionData
    deadline: dt.datetime


def _status_for(error: AgentCallError) -> AgentRunStatus:
    return AgentRunStatus.TIMEOUT if error.kind is FailureKind.TIMEOUT else AgentRunStatus.FAILED


async def _write(ctx: CallContext, target: AgentRunStatus, **fields: Any) -> bool:
    """Fenced row update; False when the lease is gone or the row already ended elsewhere."""

    def work(uow: UnitOfWork) -> None:
        uow.distributions.move_agent(ctx.lease, ctx.assignment.row_id, target, **fields)

    try:
        await in_transaction(work)
    except (LeaseLost, IllegalTransition):
        return False
    events.agent_status_changed(
        ctx.job_id,
        ctx.queue_task_id,
        ctx.assignment.agent_id,
        ctx.assignment.agent_name,
        target.value,
        distribution_id=ctx.distribution_id,
        latency_ms=fields.get("latency_ms"),
        error=fields.get("error"),
    )
    return True


@task(
    name="call-agent",
    cache_policy=NO_CACHE,
    task_run_name="{ctx.assignment.agent_name} <- {ctx.queue_task_id}",
)
async def call_agent(ctx: CallContext) -> AgentOutcome | State[Any]:
    """Call one agent until it answers, fails, times out, or this task is cancelled."""
    rt = get_runtime()
    logger = get_run_logger()
    a = ctx.assignment
    endpoint = AgentEndpoint(a.agent_id, a.agent_name, a.url, rt.agent_token(a.token_ref))
    if not await _write(ctx, AgentRunStatus.WORKING, started_at=utcnow(), task_run_id=str(task_run.id)):
        return Cancelled(message=f"{a.agent_name}: job no longer held by this run")
    started = time.monotonic()
    remote_task_id: str | None = None

    async def accepted(task_id: str) -> None:
        nonlocal remote_task_id
        remote_task_id = task_id

        def save(uow: UnitOfWork) -> None:
            from db.models import JobDistributionAgent

            row = uow.session.get(JobDistributionAgent, a.row_id)
            if row is not None:
                row.remote_task_id = task_id

        await in_transaction(save)

    remaining = (ctx.deadline - utcnow()).total_seconds()
    try:
        reply = await rt.agents().execute(
            endpoint, ctx.request, deadline=time.monotonic() + remaining, on_accepted=accepted
        )
    except asyncio.CancelledError:
        latency = (time.monotonic() - started) * 1000
        # The race is over (another agent won, or the job was cancelled): record it, tell the agent.
        await _write(
            ctx,
            AgentRunStatus.CANCELLED,
            finished_at=utcnow(),
            latency_ms=latency,
            failure_kind=FailureKind.CANCELLED.value,
            error="cancelled: another agent answered first or the job was stopped",
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                rt.agents().cancel(
                    endpoint,
                    job_id=ctx.queue_task_id,
                    distribution_id=ctx.distribution_id,
                    remote_task_id=remote_task_id,
                ),
                CANCEL_CALL_TIMEOUT,
            )
        return Cancelled(message=f"{a.agent_name} cancelled after {latency:.0f} ms")
    except AgentCallError as exc:
        latency = (time.monotonic() - started) * 1000
        outcome = AgentOutcome(
            _status_for(exc), error=str(exc), failure_kind=exc.kind, latency_ms=latency,
            attempts=exc.attempts,
        )
        await _write(
            ctx,
            outcome.status,
            finished_at=utcnow(),
            latency_ms=latency,
            error=outcome.error,
            failure_kind=exc.kind.value,
            attempts=exc.attempts,
        )
        logger.warning("%s %s after %.0f ms: %s", a.agent_name, outcome.status.value, latency, exc)
        raise AgentCallFailed(a.agent_name, outcome) from None
    latency = (time.monotonic() - started) * 1000
    outcome = AgentOutcome(
        AgentRunStatus.COMPLETED, result=reply.result, latency_ms=latency, score=reply.score,
        attempts=reply.attempts,
    )
    if not await _write(
        ctx,
        AgentRunStatus.COMPLETED,
        finished_at=utcnow(),
        latency_ms=latency,
        result=reply.result,
        score=reply.score,
        attempts=reply.attempts,
    ):
        return Cancelled(message=f"{a.agent_name}: answered, but the job was no longer held")
    logger.info("%s COMPLETED in %.0f ms", a.agent_name, latency)
    return outcome
