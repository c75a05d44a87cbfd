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
from prefect.client.schemas.objects import State
from prefect.runtime import task_run
from prefect.states import Cancelled, Failed

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.bootstrap import prefect_events as events
from agent_dispatch.clients.agent import AgentEndpoint, AgentReply
from agent_dispatch.clients.errors import AgentCallError
from agent_dispatch.clients.wire import JobExecutionData
from agent_dispatch.db.distribution_repository import Assignment
from agent_dispatch.db.models import JobDistributionAgent
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind, IllegalTransition
from agent_dispatch.tasks.dbio import in_transaction

CANCEL_CALL_TIMEOUT = 5.0

# Stop signals by agent row id. The flow sets one to end a losing call; the task cancels its
# own HTTP call and returns Cancelled. Cancelling the Prefect task's asyncio task directly can
# land before the task body starts, and Prefect then records the run as Crashed.
_stops: dict[str, asyncio.Event] = {}


def stop_signal(row_id: str) -> asyncio.Event:
    return _stops.setdefault(row_id, asyncio.Event())


def request_stop(row_id: str) -> None:
    stop_signal(row_id).set()


def forget_stop(row_id: str) -> None:
    _stops.pop(row_id, None)


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


async def _stopped(
    ctx: CallContext,
    endpoint: AgentEndpoint,
    started: float,
    remote_task_id: str | None,
    call: asyncio.Future[Any] | None = None,
) -> State[Any]:
    """Tell the agent to stop (best effort, bounded), end our request, record CANCELLED."""
    latency = (time.monotonic() - started) * 1000
    # The contract's POST /cancel is for work "answered synchronously (the request is still
    # open)": send it before our own request is torn down.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            get_runtime()
            .agents()
            .cancel(
                endpoint,
                job_id=ctx.queue_task_id,
                distribution_id=ctx.distribution_id,
                remote_task_id=remote_task_id,
            ),
            CANCEL_CALL_TIMEOUT,
        )
    if call is not None:
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    await _write(
        ctx,
        AgentRunStatus.CANCELLED,
        finished_at=utcnow(),
        latency_ms=latency,
        failure_kind=FailureKind.CANCELLED.value,
        error="cancelled: another agent answered first or the job was stopped",
    )
    return Cancelled(message=f"{endpoint.name} cancelled after {latency:.0f} ms")


@task(
    name="call-agent",
    cache_policy=NO_CACHE,
    task_run_name="{ctx.assignment.agent_name} <- {ctx.queue_task_id}",
)
async def call_agent(ctx: CallContext) -> AgentOutcome | State[Any]:
    """Call one agent until it answers, fails, times out, or the flow stops it."""
    rt = get_runtime()
    a = ctx.assignment
    endpoint = AgentEndpoint(a.agent_id, a.agent_name, a.url, rt.agent_token(a.token_ref))
    stop = stop_signal(a.row_id)
    started = time.monotonic()
    if stop.is_set():
        return await _stopped(ctx, endpoint, started, None)
    if not await _write(
        ctx, AgentRunStatus.WORKING, started_at=utcnow(), task_run_id=str(task_run.id)
    ):
        return Cancelled(message=f"{a.agent_name}: job no longer held by this run")
    remote_task_id: str | None = None

    async def accepted(task_id: str) -> None:
        nonlocal remote_task_id
        remote_task_id = task_id

        def save(uow: UnitOfWork) -> None:
            if uow.jobs.holds(ctx.lease):  # fenced like every other write of this job
                row = uow.session.get(JobDistributionAgent, a.row_id)
                if row is not None:
                    row.remote_task_id = task_id

        await in_transaction(save)

    remaining = (ctx.deadline - utcnow()).total_seconds()
    call = asyncio.ensure_future(
        rt.agents().execute(
            endpoint, ctx.request, deadline=time.monotonic() + remaining, on_accepted=accepted
        )
    )
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        request_stop(a.row_id)  # the flow itself is being cancelled
    finally:
        waiter.cancel()
    if not call.done():
        return await _stopped(ctx, endpoint, started, remote_task_id, call)
    return await _settle(ctx, call, started)


async def _settle(
    ctx: CallContext, call: asyncio.Future[AgentReply], started: float
) -> AgentOutcome | State[Any]:
    """Turn the finished call into the row's end state and the task run's state."""
    a = ctx.assignment
    answered = time.monotonic()
    latency = (answered - started) * 1000
    exc = call.exception()
    if isinstance(exc, AgentCallError):
        status = (
            AgentRunStatus.TIMEOUT if exc.kind is FailureKind.TIMEOUT else AgentRunStatus.FAILED
        )
        outcome = AgentOutcome(
            status, error=str(exc), failure_kind=exc.kind, latency_ms=latency, attempts=exc.attempts
        )
        await _write(
            ctx,
            status,
            finished_at=utcnow(),
            latency_ms=latency,
            error=outcome.error,
            failure_kind=exc.kind.value,
            attempts=exc.attempts,
        )
        get_run_logger().warning(
            "%s %s after %.0f ms: %s", a.agent_name, status.value, latency, exc
        )
        # A Failed state (not an exception) marks the run Failed in the UI without a traceback.
        return Failed(message=f"{a.agent_name} {status.value}: {exc}", data=outcome)
    if exc is not None:
        raise exc  # a bug, not an agent fault: let Prefect show it
    reply = call.result()
    outcome = AgentOutcome(
        AgentRunStatus.COMPLETED,
        result=reply.result,
        latency_ms=latency,
        score=reply.score,
        attempts=reply.attempts,
        answered_at=answered,
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
    get_run_logger().info("%s COMPLETED in %.0f ms", a.agent_name, latency)
    return outcome
