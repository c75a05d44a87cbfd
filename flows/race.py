"""The race for one job: agents called at once, first good result wins, the rest cancelled."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

from prefect.states import State

from agent_dispatch.wiring import get_runtime
from clients.wire import JobExecutionData
from db.models import utcnow
from domain.lease import Lease, LeaseLost
from domain.model import AgentOutcome
from domain.selection import is_winner
from tasks.agent_calls import AgentCallFailed, CallContext, call_agent
from tasks.dbio import in_transaction
from tasks.job_steps import Taken, deadline_for


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
        exc = await state.result(raise_on_failure=False)  # type: ignore[misc]
        return exc.outcome if isinstance(exc, AgentCallFailed) else None
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
        try:
            if now - last_renew >= renew_every:
                current = await in_transaction(
                    lambda uow, c=current: uow.jobs.renew(c, utcnow(), s.job_lease_seconds)
                )
                last_renew = now
            elif not await in_transaction(lambda uow, c=current: uow.jobs.holds(c)):
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
    calls = {
        asyncio.create_task(call_agent(ctx, return_state=True)): ctx
        for ctx in call_contexts(taken)
    }
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
            for finished in done:
                pending.discard(finished)
                outcome = await _outcome_of(finished.result())
                if outcome is not None and is_winner(outcome) and winner is None:
                    winner, first_at = calls[finished].assignment.row_id, utcnow()
    finally:
        watchdog.cancel()
        for loser in pending:
            loser.cancel()
        # Each cancelled call records CANCELLED and sends the agent its cancel request.
        await asyncio.gather(*pending, watchdog, return_exceptions=True)
    return RaceResult(winner, first_at, lease_lost)
