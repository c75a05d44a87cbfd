"""The race for one job: agents called at once, the first good result wins, the rest stop.

How each call runs is injected (`StartCall`): as a Prefect task run per agent (traced mode),
or as a plain coroutine (tests, lean mode). The race itself knows nothing of Prefect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any

from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.selection import first_winner
from agent_dispatch.services.calling import CallContext, call_agent, call_contexts
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.taking import Taken

STOP_GRACE_SECONDS = 15.0  # a stopped call records its end and sends one bounded cancel

# Runs one agent call to its end and returns its outcome (None: the job was no longer held).
StartCall = Callable[[CallContext, asyncio.Event], Coroutine[Any, Any, AgentOutcome | None]]


@dataclasses.dataclass(frozen=True, slots=True)
class RaceResult:
    winner_row_id: str | None
    first_result_at: dt.datetime | None
    lease_lost: bool


def plain_calls(deps: Deps) -> StartCall:
    """Agent calls as plain coroutines, without a task run each."""

    async def start(ctx: CallContext, stop: asyncio.Event) -> AgentOutcome | None:
        return (await call_agent(deps, ctx, stop)).outcome

    return start


async def watch_lease(deps: Deps, lease: Lease) -> None:
    """Return when the lease is lost (operator cancel, sweep rescue); renew it meanwhile."""
    s = deps.settings
    loop = asyncio.get_running_loop()
    renew_every = s.job_lease_seconds / 3
    last_renew = loop.time()
    current = lease
    while True:
        await asyncio.sleep(s.lease_check_seconds)
        now = loop.time()
        held = current

        def renew(uow: UnitOfWork, held: Lease = held) -> Lease:
            return uow.jobs.renew(held, utcnow(), s.job_lease_seconds)

        def holds(uow: UnitOfWork, held: Lease = held) -> bool:
            return uow.jobs.holds(held)

        try:
            if now - last_renew >= renew_every:
                current = await in_transaction(deps, renew)
                last_renew = now
            elif not await in_transaction(deps, holds):
                return
        except LeaseLost:
            return


async def race(deps: Deps, taken: Taken, start: StartCall) -> RaceResult:
    """Start every agent call at once; keep the first COMPLETED, stop the others."""
    calls: dict[asyncio.Task[AgentOutcome | None], CallContext] = {}
    stops: dict[str, asyncio.Event] = {}
    for ctx in call_contexts(deps, taken):
        stop = stops[ctx.assignment.row_id] = asyncio.Event()
        calls[asyncio.create_task(start(ctx, stop))] = ctx
    watchdog = asyncio.create_task(watch_lease(deps, taken.claim.lease))
    pending: set[asyncio.Task[AgentOutcome | None]] = set(calls)
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
                pending.discard(finished)  # type: ignore[arg-type]
                outcome = finished.result()
                if isinstance(outcome, AgentOutcome):
                    landed.append((calls[finished].assignment.row_id, outcome))  # type: ignore[index]
            winner = first_winner(landed)
            if winner is not None:
                first_at = utcnow()
    finally:
        watchdog.cancel()
        # A stop signal, not task.cancel(): cancelling a Prefect task's asyncio task can land
        # before its body starts, and Prefect then records the run as Crashed.
        for loser in pending:
            stops[calls[loser].assignment.row_id].set()
        _, stuck = await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS) if pending else ((), ())
        for task_ in stuck:
            task_.cancel()
        await asyncio.gather(*pending, watchdog, return_exceptions=True)
    return RaceResult(winner, first_at, lease_lost)
