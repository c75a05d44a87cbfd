"""The race for one job: agents called at once, first good result wins, the rest cancelled."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Coroutine
from typing import Any, cast

from prefect.client.schemas.objects import State

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.clients.wire import JobExecutionData
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.selection import first_winner
from agent_dispatch.tasks.agent_calls import CallContext, call_agent, forget_stop, request_stop
from agent_dispatch.tasks.dbio import in_transaction
from agent_dispatch.tasks.job_steps import Taken, deadline_for

STOP_GRACE_SECONDS = 15.0  # a stopped call records its end and sends one bounded cancel


@dataclasses.dataclass(frozen=True, slots=True)
class RaceResult:
    winner_row_id: str | None
    first_result_at: dt.datetime | None
    lease_lost: bool


async def _outcome_of(state: State[Any]) -> AgentOutcome | None:
    if state.is_completed():
        value = await state.result()  # type: ignore[misc]
        return value if isinstance(value, AgentOutcome) else None
    if state.is_failed():
        data = await state.result(raise_on_failure=False)  # type: ignore[misc]
        return data if isinstance(data, AgentOutcome) else None
    return None


async def watch_lease(lease: Lease) -> None:
    """Return when the lease is lost (operator cancel, sweep rescue); renew it meanwhile."""
    s = get_runtime().settings
    renew_every = s.job_lease_seconds / 3
    last_renew = asyncio.get_running_loop().time()
    current = lease
    while True:
        await asyncio.sleep(s.lease_check_seconds)
        now = asyncio.get_running_loop().time()

        def renew(uow: UnitOfWork, held: Lease = current) -> Lease:
            return uow.jobs.renew(held, utcnow(), s.job_lease_seconds)

        def holds(uow: UnitOfWork, held: Lease = current) -> bool:
            return uow.jobs.holds(held)

        try:
            if now - last_renew >= renew_every:
                current = await in_transaction(renew)
                last_renew = now
            elif not await in_transaction(holds):
                return
        except LeaseLost:
            return


def call_contexts(taken: Taken) -> list[CallContext]:
    settings = get_runtime().settings
    claim, dist = taken.claim, taken.distribution
    spec = claim.spec
    deadline = deadline_for(spec, settings.default_agent_timeout, utcnow())
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


async def race(taken: Taken) -> RaceResult:
    """Start one call_agent task run per agent; keep the first COMPLETED, cancel the others."""
    calls: dict[asyncio.Task[Any], CallContext] = {}
    for ctx in call_contexts(taken):
        # An async task called in an async flow returns a coroutine; Prefect's typing says State.
        started = cast(Coroutine[Any, Any, State[Any]], call_agent(ctx, return_state=True))
        calls[asyncio.create_task(started)] = ctx
    watchdog = asyncio.create_task(watch_lease(taken.claim.lease))
    pending: set[asyncio.Task[Any]] = set(calls)
    winner: str | None = None
    first_at: dt.datetime | None = None
    lease_lost = False
    try:
        while pending and winner is None:
            done, _ = await asyncio.wait(pending | {watchdog}, return_when=asyncio.FIRST_COMPLETED)
            if watchdog in done:
                lease_lost = True
                break
            landed = []
            for finished in done:
                pending.discard(finished)
                outcome = await _outcome_of(cast(State[Any], finished.result()))
                if outcome is not None:
                    landed.append((calls[finished].assignment.row_id, outcome))
            winner = first_winner(landed)
            if winner is not None:
                first_at = utcnow()
    finally:
        watchdog.cancel()
        for loser in pending:
            request_stop(calls[loser].assignment.row_id)
        # Each stopped call cancels its HTTP request, records CANCELLED and tells the agent.
        _, stuck = await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS) if pending else ((), ())
        for task_ in stuck:
            task_.cancel()
        await asyncio.gather(*pending, watchdog, return_exceptions=True)
        for ctx in calls.values():
            forget_stop(ctx.assignment.row_id)
    return RaceResult(winner, first_at, lease_lost)
