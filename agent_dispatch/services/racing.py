"""The race for one job: agents started by the job's policy, a result chosen by its strategy.

The domain's `RacePlan` decides who starts when (all at once, one at a time, or hedged
after a delay) and when the race is over (first good answer, best score, or a quorum,
escalating on disagreement); this module only runs calls, feeds the plan what landed and
wakes it at its hedge deadlines. Calls still running when it decides are stopped at once.

How each call runs is injected (`StartCall`): as a Prefect task run per agent (traced mode),
or as a plain coroutine (tests, lean mode). The race itself knows nothing of Prefect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.hedging import Policy, RacePlan, Step
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind
from agent_dispatch.domain.strategies import Decided, Same, Scorer, reported_score, same_json
from agent_dispatch.services.calling import CallContext, RaceStop, call_agent, call_contexts
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.dispatch_rules import JobRules, RaceInputs, race_inputs, rules_for
from agent_dispatch.services.taking import Taken

STOP_GRACE_SECONDS = 15.0  # a stopped call records its end and sends one bounded cancel

# Runs one agent call to its end and returns its outcome (None: the job was no longer held).
StartCall = Callable[[CallContext, asyncio.Event], Coroutine[Any, Any, AgentOutcome | None]]
# Told the winner (row id, outcome) the moment the strategy decides, while the losers are
# being stopped; True when the queue now holds the result (finishing.tell_winner).
OnDecided = Callable[[str, AgentOutcome], Awaitable[bool]]


@dataclasses.dataclass(frozen=True, slots=True)
class RaceResult:
    winner_row_id: str | None
    first_result_at: dt.datetime | None
    lease_lost: bool
    reason: str | None = None  # why the strategy decided (or gave up)
    queue_told: bool = False  # the queue already holds the winner's result (OnDecided)


def plain_calls(deps: Deps, task_run_id: str | None = None) -> StartCall:
    """Agent calls as plain coroutines, without a task run each (`task_run_id`: the run that
    holds them all, noted on each agent row, as a traced call notes its own)."""

    async def start(ctx: CallContext, stop: asyncio.Event) -> AgentOutcome | None:
        return (await call_agent(deps, ctx, stop, task_run_id)).outcome

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


# What the plan is told when a call ended without an outcome (the job was no longer held).
NO_OUTCOME = AgentOutcome(AgentRunStatus.CANCELLED, failure_kind=FailureKind.CANCELLED)


def _plan_for(
    rules: JobRules, taken: Taken, inputs: RaceInputs, scorer: Scorer, same: Same
) -> RacePlan:
    rows = sorted(taken.distribution.assignments, key=lambda a: a.rank)
    return RacePlan(
        [a.row_id for a in rows],
        rules.rule,
        rules.strategy,
        limit=rules.limit,
        p95_ms={a.row_id: inputs.delay_basis_ms.get(a.agent_id) for a in rows},
        success_p={
            a.row_id: p for a in rows if (p := inputs.success_p.get(a.agent_id)) is not None
        },
        scorer=scorer,
        same=same,
    )


async def race(
    deps: Deps,
    taken: Taken,
    start: StartCall,
    *,
    scorer: Scorer = reported_score,
    same: Same = same_json,
    on_decided: OnDecided | None = None,
    task_run_id: str | None = None,
) -> RaceResult:
    """Start calls as the plan says; stop the others as soon as it has decided.

    `scorer` (best-score) and `same` (quorum) are pluggable; by default the agents' own
    `score` and canonical-JSON equality. `on_decided` hears of the winner before the losers
    have ended (they are told to stop first, and wind down meanwhile). `task_run_id`: the
    task run holding every call (lean mode), noted on each row as it starts.
    """
    spec = taken.claim.spec
    rules = rules_for(deps.settings, spec)
    inputs = RaceInputs({}, {})
    if rules.rule.policy is Policy.HEDGE:  # only hedging reads delays and success chances
        agent_ids = [a.agent_id for a in taken.distribution.assignments]
        inputs = await in_transaction(
            deps, lambda uow: race_inputs(uow, deps.settings, spec.category, agent_ids, utcnow())
        )
    plan = _plan_for(rules, taken, inputs, scorer, same)
    contexts = {ctx.assignment.row_id: ctx for ctx in call_contexts(deps, taken)}
    calls: dict[asyncio.Task[AgentOutcome | None], str] = {}
    stops: dict[str, RaceStop] = {}
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def launch(step: Step) -> None:
        if not step.start:
            return
        # Every call this step starts is WORKING in one transaction (one change-log commit),
        # before any request leaves; each call then only announces it.
        await in_transaction(deps, lambda uow: _mark_working(uow, taken, step, task_run_id))
        for row_id in step.start:
            ctx = dataclasses.replace(contexts[row_id], launch=step.why, marked_working=True)
            stops[row_id] = RaceStop()
            calls[asyncio.create_task(start(ctx, stops[row_id]))] = row_id

    watchdog = asyncio.create_task(watch_lease(deps, taken.claim.lease))
    first_at: dt.datetime | None = None
    lease_lost = queue_told = False
    outcomes: dict[str, AgentOutcome] = {}
    landed_tasks: set[asyncio.Task[AgentOutcome | None]] = set()
    try:
        step = plan.step(0.0)
        await launch(step)
        while step.verdict is None:
            pending = {t for t in calls if t not in landed_tasks}
            wait = step.wake_at_ms
            timeout = None if wait is None else max(wait - (loop.time() - began) * 1000, 0) / 1000
            done, _ = await asyncio.wait(
                pending | {watchdog}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if watchdog in done:
                lease_lost = True
                break
            # Every finished call is fed once, answers that land together in answer order.
            finished = [t for t in calls if t.done() and t not in landed_tasks]
            landed_tasks.update(finished)
            landed = [(calls[t], t.result() or NO_OUTCOME) for t in finished]
            for row_id, outcome in sorted(landed, key=lambda ro: ro[1].answered_at or 0.0):
                outcomes[row_id] = outcome
                plan.landed(row_id, outcome)
            step = plan.step((loop.time() - began) * 1000)
            await launch(step)
            idle = all(t.done() for t in calls) and step.wake_at_ms is None
            if step.verdict is None and idle:
                break  # nothing runs and nothing is due: cannot happen with a sound plan
        if isinstance(step.verdict, Decided):
            first_at = utcnow()
            _stop(calls, stops, decided=True)  # losers wind down while the winner is told
            won = outcomes.get(step.verdict.winner)
            if on_decided is not None and won is not None:
                queue_told = await on_decided(step.verdict.winner, won)
    finally:
        watchdog.cancel()
        pending = _stop(calls, stops)
        _, stuck = await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS) if pending else ((), ())
        for task_ in stuck:
            task_.cancel()
        await asyncio.gather(*pending, watchdog, return_exceptions=True)
    verdict = plan.verdict
    winner = verdict.winner if isinstance(verdict, Decided) else None
    return RaceResult(winner, first_at, lease_lost, verdict.reason if verdict else None, queue_told)


def _mark_working(uow: UnitOfWork, taken: Taken, step: Step, task_run_id: str | None) -> None:
    uow.distributions.start_calls(
        taken.claim.lease,
        taken.claim.spec.queue_task_id,
        step.start,
        started_at=utcnow(),
        task_run_id=task_run_id,
    )


def _stop(
    calls: dict[asyncio.Task[AgentOutcome | None], str],
    stops: dict[str, RaceStop],
    decided: bool = False,
) -> set[asyncio.Task[AgentOutcome | None]]:
    """Signal every call still running to stop; returns them. `decided`: the job's end
    follows, and closes their rows (see RaceStop).

    A stop signal, not task.cancel(): cancelling a Prefect task's asyncio task can land before
    its body starts, and Prefect then records the run as Crashed."""
    pending = {t for t in calls if not t.done()}
    for loser in pending:
        stop = stops[calls[loser]]
        stop.decided = stop.decided or decided
        stop.set()
    return pending
