"""One agent call: WORKING -> COMPLETED | FAILED | TIMEOUT | CANCELLED, every write fenced."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from typing import Any

from agent_dispatch.clients.agent import AgentEndpoint, AgentReply
from agent_dispatch.clients.errors import AgentBlocked, AgentCallError, TokenUnavailable
from agent_dispatch.clients.wire import JobExecutionData
from agent_dispatch.db.distribution_repository import Assignment, Moving
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.lifecycle import deadline_for
from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind, IllegalTransition
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.taking import Taken

log = logging.getLogger(__name__)

CANCEL_CALL_TIMEOUT = 5.0
LOST_RACE = "cancelled: another agent answered first or the job was stopped"


# How a call that ended without a result is recorded: a timeout is TIMEOUT, a task the agent
# cancelled itself (A2A `canceled`) is CANCELLED, which does not judge the agent; the rest FAILED.
_ENDED_BY = {
    FailureKind.TIMEOUT: AgentRunStatus.TIMEOUT,
    FailureKind.CANCELLED: AgentRunStatus.CANCELLED,
}


@dataclasses.dataclass(frozen=True, slots=True)
class CallContext:
    """What one agent call needs; plain data, safe to hand to a Prefect task."""

    lease: Lease
    job_id: str
    queue_task_id: str
    distribution_id: str
    assignment: Assignment
    request: JobExecutionData
    deadline: dt.datetime
    launch: str = ""  # why the race started this call now (first, hedge, escalation)
    marked_working: bool = False  # the race wrote the row WORKING with its batch of starts


class RaceStop(asyncio.Event):
    """The race's stop signal for one call. `decided`: the race has its result and the job's
    end follows, so a stopped call leaves its row to `finish_job`, which closes it CANCELLED
    in the job's last transaction (one commit for every loser, not one each)."""

    def __init__(self) -> None:
        super().__init__()
        self.decided = False


@dataclasses.dataclass(frozen=True, slots=True)
class CallEnd:
    """How a call ended: `outcome` is None when the job was no longer held by this run."""

    outcome: AgentOutcome | None
    message: str


def call_contexts(deps: Deps, taken: Taken) -> list[CallContext]:
    """One context per assigned agent, all with the same deadline."""
    claim, dist = taken.claim, taken.distribution
    spec = claim.spec
    deadline = deadline_for(spec, deps.settings.default_agent_timeout, utcnow())
    return [
        CallContext(
            lease=claim.lease,
            job_id=claim.job_id,
            queue_task_id=spec.queue_task_id,
            distribution_id=dist.distribution_id,
            assignment=a,
            request=JobExecutionData(
                job_id=spec.queue_task_id,
                distribution_id=dist.distribution_id,
                agent_id=a.agent_id,
                title=spec.title,
                description=spec.description,
                category=spec.category,
                tags=list(spec.tags),
                skill_level=spec.skill_level,
                payload=spec.payload,
                deadline=deadline,
            ),
            deadline=deadline,
        )
        for a in dist.assignments
    ]


async def call_agent(
    deps: Deps, ctx: CallContext, stop: asyncio.Event, task_run_id: str | None = None
) -> CallEnd:
    """Call one agent until it answers, fails, times out, or `stop` is set."""
    a = ctx.assignment
    try:
        token, unreadable = await deps.agent_token(a.token_ref), None
    except TokenUnavailable as exc:  # our configuration's fault, not the agent's: BLOCKED
        token, unreadable = None, AgentBlocked(f"agent {a.agent_id}: {exc}")
    endpoint = AgentEndpoint(a.agent_id, a.agent_name, a.url, token, a.protocol)
    started = time.monotonic()
    # A traced call's own task run is known only here: its row gets it with its end.
    ran_in = {"task_run_id": task_run_id} if task_run_id and ctx.marked_working else {}
    if stop.is_set():
        return await _stopped(deps, ctx, endpoint, started, None, ran_in=ran_in)
    if ctx.marked_working:
        _announce(deps, ctx, AgentRunStatus.WORKING, ctx.launch or None, {})
    elif not await _write(
        deps,
        ctx,
        AgentRunStatus.WORKING,
        note=ctx.launch or None,
        started_at=utcnow(),
        task_run_id=task_run_id,
    ):
        return CallEnd(None, f"{a.agent_name}: job no longer held by this run")
    remote_task_id: str | None = None

    async def accepted(task_id: str) -> None:
        nonlocal remote_task_id
        remote_task_id = task_id
        await in_transaction(
            deps, lambda uow: uow.distributions.set_remote_task_id(ctx.lease, a.row_id, task_id)
        )

    remaining = (ctx.deadline - utcnow()).total_seconds()
    call = asyncio.ensure_future(
        _refuse(unreadable)
        if unreadable is not None
        else deps.agents().execute(
            endpoint, ctx.request, deadline=time.monotonic() + remaining, on_accepted=accepted
        )
    )
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        stop.set()  # the run itself is being cancelled: stop the agent too
    finally:
        waiter.cancel()
    if not call.done():
        leave = isinstance(stop, RaceStop) and stop.decided  # finish_job closes the row
        return await _stopped(
            deps, ctx, endpoint, started, remote_task_id, call, ran_in=ran_in, leave_row=leave
        )
    return await _settle(deps, ctx, call, started, ran_in)


async def _refuse(error: AgentBlocked) -> AgentReply:
    """A call that cannot be made (its token is unreadable) ends like a blocked one."""
    raise error


async def _write(
    deps: Deps,
    ctx: CallContext,
    target: AgentRunStatus,
    note: str | None = None,
    *,
    from_working: bool = False,
    **fields: Any,
) -> bool:
    """Fenced row update; False when the lease is gone or the row already ended elsewhere.
    `from_working`: a call's end, whose row this call (or its race) wrote WORKING: the row is
    not read first (the UPDATE still moves it only from WORKING)."""
    a = ctx.assignment
    working = AgentRunStatus.WORKING.value
    seen = (
        Moving(working, a.agent_id, a.agent_name, ctx.job_id, ctx.queue_task_id)
        if from_working
        else None
    )
    try:
        await in_transaction(
            deps,
            lambda uow: uow.distributions.move_agent(
                ctx.lease, a.row_id, target, seen=seen, **fields
            ),
        )
    except (LeaseLost, IllegalTransition):
        return False
    _announce(deps, ctx, target, note, fields)
    return True


def _announce(
    deps: Deps, ctx: CallContext, target: AgentRunStatus, note: str | None, fields: dict[str, Any]
) -> None:
    deps.events.agent_changed(
        ctx.job_id,
        ctx.queue_task_id,
        ctx.assignment.agent_id,
        ctx.assignment.agent_name,
        target.value,
        distribution_id=ctx.distribution_id,
        latency_ms=fields.get("latency_ms"),
        error=fields.get("error"),
        launch=note,
    )


async def _stopped(
    deps: Deps,
    ctx: CallContext,
    endpoint: AgentEndpoint,
    started: float,
    remote_task_id: str | None,
    call: asyncio.Future[Any] | None = None,
    *,
    ran_in: dict[str, Any],
    leave_row: bool = False,
) -> CallEnd:
    """Tell the agent to stop (best effort, bounded), end our request, record CANCELLED."""
    latency = (time.monotonic() - started) * 1000
    # The contract's POST /cancel is for work "answered synchronously (the request is still
    # open)": send it before our own request is torn down.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            deps.agents().cancel(
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
    outcome = AgentOutcome(
        AgentRunStatus.CANCELLED,
        error=LOST_RACE,
        failure_kind=FailureKind.CANCELLED,
        latency_ms=latency,
    )
    if leave_row:
        return CallEnd(outcome, f"{endpoint.name} cancelled after {latency:.0f} ms (lost)")
    await _write(
        deps,
        ctx,
        AgentRunStatus.CANCELLED,
        finished_at=utcnow(),
        latency_ms=latency,
        failure_kind=FailureKind.CANCELLED.value,
        error=LOST_RACE,
        **ran_in,
    )
    return CallEnd(outcome, f"{endpoint.name} cancelled after {latency:.0f} ms")


async def _settle(
    deps: Deps,
    ctx: CallContext,
    call: asyncio.Future[AgentReply],
    started: float,
    ran_in: dict[str, Any],
) -> CallEnd:
    """Turn the finished call into the row's end state."""
    a = ctx.assignment
    answered = time.monotonic()
    latency = (answered - started) * 1000
    exc = call.exception()
    if isinstance(exc, AgentCallError):
        status = _ENDED_BY.get(exc.kind, AgentRunStatus.FAILED)
        outcome = AgentOutcome(
            status, error=str(exc), failure_kind=exc.kind, latency_ms=latency, attempts=exc.attempts
        )
        await _write(
            deps,
            ctx,
            status,
            from_working=True,
            finished_at=utcnow(),
            latency_ms=latency,
            error=outcome.error,
            failure_kind=exc.kind.value,
            attempts=exc.attempts,
            **ran_in,
        )
        return CallEnd(outcome, f"{a.agent_name} {status.value} after {latency:.0f} ms: {exc}")
    if exc is not None:
        raise exc  # a bug, not an agent fault: let the caller (and Prefect) show it
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
        deps,
        ctx,
        AgentRunStatus.COMPLETED,
        from_working=True,
        finished_at=utcnow(),
        latency_ms=latency,
        result=reply.result,
        score=reply.score,
        attempts=reply.attempts,
        **ran_in,
    ):
        return CallEnd(None, f"{a.agent_name}: answered, but the job was no longer held")
    return CallEnd(outcome, f"{a.agent_name} COMPLETED in {latency:.0f} ms")
