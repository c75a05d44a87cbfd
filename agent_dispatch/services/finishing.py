"""Finishing: pick the result, end the job, update agent statistics, tell the queue."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agent_dispatch.db.agent_repository import stats_of
from agent_dispatch.db.distribution_repository import AttemptRow, Moving
from agent_dispatch.db.models import JobDistributionAgent
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.breaker import Circuit, after_outcome
from agent_dispatch.domain.lifecycle import final_status
from agent_dispatch.domain.model import AgentOutcome, ResultStrategy, StrategyKind
from agent_dispatch.domain.posterior import Evidence, seen_of
from agent_dispatch.domain.selection import verdict
from agent_dispatch.domain.stats import apply_outcome
from agent_dispatch.domain.statuses import (
    AGENT_OPEN,
    AgentRunStatus,
    DistributionStatus,
    FailureKind,
    JobStatus,
)
from agent_dispatch.domain.strategies import Answer, Decided, Failed, decide
from agent_dispatch.services.calling import LOST_RACE
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.dispatch_rules import rules_for
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.queue_io import queue_side
from agent_dispatch.services.taking import Taken

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class JobEnd:
    queue_task_id: str
    job_id: str
    status: JobStatus
    winner: str | None = None
    winner_latency_ms: float | None = None
    error: str | None = None
    report_problem: str | None = None  # the queue was not told yet: the sweep resends


NOT_NEEDED = "not started: the result was decided before this agent was needed"


@dataclasses.dataclass(frozen=True, slots=True)
class _Closed:
    agent_id: str | None
    agent_name: str
    latency_ms: float | None  # None: never started (a hedge reserve)
    error: str


def _close_open_rows(
    uow: UnitOfWork,
    claim: Claim,
    rows: list[AttemptRow],
    now: dt.datetime,
    stopped_at: dt.datetime | None,
    closed: list[_Closed],
) -> list[AttemptRow]:
    """End the rows the race left open: the losers it stopped once it had its result (they
    leave their rows to this transaction; their latency runs to that stop, `stopped_at`)
    and the never-started reserves. The attempt's rows as written, in their order."""
    after = {}
    # The caller holds every agent's row lock already (each close moves its agent's in_flight
    # count, a trigger); agent id order keeps the feed's changes in one stable order.
    for row in sorted(rows, key=lambda r: r.agent_id or ""):
        if AgentRunStatus(row.status) not in AGENT_OPEN:
            continue
        started = row.started_at
        ran_to = max(stopped_at or now, started) if started is not None else now
        latency = None if started is None else (ran_to - started).total_seconds() * 1000
        error = NOT_NEEDED if started is None else LOST_RACE
        cancelled = AgentRunStatus.CANCELLED
        ending: dict[str, Any] = {
            "finished_at": now,
            "failure_kind": FailureKind.CANCELLED.value,
            "error": error,
            "latency_ms": latency,
        }
        # The row as read above, under the agents' locks: not read again.
        seen = Moving(
            row.status, row.agent_id, row.agent_name, claim.job_id, claim.spec.queue_task_id
        )
        uow.distributions.move_agent(claim.lease, row.id, cancelled, seen=seen, **ending)
        after[row.id] = row._replace(status=cancelled.value, **ending)  # as written
        closed.append(_Closed(row.agent_id, row.agent_name, latency, error))
    return [after.get(r.id, r) for r in rows]


def strategy_verdict(
    strategy: ResultStrategy, rows: Sequence[JobDistributionAgent | AttemptRow]
) -> tuple[bool, str]:
    """Whether the strategy gave up over the final rows, and its verdict in words."""
    answers = [
        Answer(r.id, outcome_of(r))
        for r in sorted(rows, key=lambda r: r.finished_at or dt.datetime.max.replace(tzinfo=dt.UTC))
        if r.started_at is not None
    ]
    v = decide(strategy, answers, running=0, launchable=0)
    reason = v.reason if isinstance(v, Decided | Failed) else "undecided"
    return isinstance(v, Failed), f"{strategy.label()}: {reason}"


def outcome_of(row: JobDistributionAgent | AttemptRow) -> AgentOutcome:
    kind = FailureKind(row.failure_kind) if row.failure_kind else None
    return AgentOutcome(
        AgentRunStatus(row.status),
        row.result,
        row.error,
        kind,
        row.latency_ms,
        row.score,
        row.attempts,
    )


def tell_winner(deps: Deps, taken: Taken) -> Callable[[str, AgentOutcome], Awaitable[bool]]:
    """The race's `on_decided`: report the winner's result to the queue at once.

    The winner's COMPLETED row was a fenced write, so this run held the job a moment ago;
    the local ending follows in `finish_job` (which then sends nothing). An operator cancel
    landing in between finds the queue COMPLETED and is refused there, as any late cancel is.
    """
    claim = taken.claim

    async def tell(row_id: str, outcome: AgentOutcome) -> bool:
        agent_id = next(a.agent_id for a in taken.distribution.assignments if a.row_id == row_id)
        problem = await queue_side(deps, claim.spec).report(
            claim.spec.queue_task_id,
            JobStatus.COMPLETED,
            taken.queue_status.value,
            result=outcome.result,
            agent_id=agent_id,
        )
        if problem is not None:
            log.warning("queue not told COMPLETED yet: %s (finish tries again)", problem)
        return problem is None

    return tell


async def finish_job(
    deps: Deps,
    taken: Taken,
    winner_row_id: str | None,
    first_result_at: dt.datetime | None,
    queue_told: bool = False,
) -> JobEnd:
    """End the job, its attempt and its agents' statistics in one transaction, then report
    (unless `queue_told`: the race reported the winner already, see `tell_winner`)."""
    s = deps.settings
    claim, dist = taken.claim, taken.distribution
    qid = claim.spec.queue_task_id

    def decide(
        uow: UnitOfWork,
    ) -> tuple[JobEnd, Any, AttemptRow | None, str, int]:
        now = utcnow()
        closed.clear()  # a transaction run again after a deadlock starts afresh
        # Every agent of the attempt is locked first, in id order, before any of its rows
        # closes: closing a row moves its agent's in_flight count (a trigger), so closing the
        # rows first took some agents' locks before others (the winner's row closed earlier, a
        # loser's now) and two finishes of the same agents deadlocked (seen at 20 jobs at once).
        # The same lock also guards the statistics below; selected_agent_id and
        # winner_agent_id then take key-share locks on a row this transaction already holds.
        locked = uow.agents.lock(a.agent_id for a in dist.assignments)
        rows = uow.distributions.attempt_rows(dist.distribution_id)
        rows = _close_open_rows(uow, claim, rows, now, first_result_at, closed)
        outcomes = {r.agent_id or r.agent_name: outcome_of(r) for r in rows}
        names = {r.agent_id or r.agent_name: r.agent_name for r in rows}
        winner = next((r for r in rows if r.id == winner_row_id), None)
        gave_up, decided = strategy_verdict(rules.strategy, rows)
        if winner is not None and winner.status == AgentRunStatus.COMPLETED:
            uow.distributions.mark_won(winner.id)
            winner = winner._replace(won=True)
            rows = [winner if r.id == winner.id else r for r in rows]
            status, error = JobStatus.COMPLETED, None
        elif rules.strategy.kind is not StrategyKind.FIRST:
            # No winner under best-score or quorum is a failure even with good answers in
            # (a quorum that never agreed): never fall back to "any completed answer wins".
            winner = None
            if not gave_up:
                decided = f"{rules.strategy.label()}: no decision before the race ended"
            status, error = final_status(JobStatus.FAILED, decided, claim.spec, now)
        else:
            winner = None
            v = verdict(outcomes, names)
            status, error = final_status(v.status, v.error, claim.spec, now)
        uow.distributions.finish(
            claim.lease,
            dist.distribution_id,
            DistributionStatus(status.value),
            now,
            winner_agent_id=winner.agent_id if winner else None,
            error=error,
            first_result_at=first_result_at,
        )
        told = {"queue_status": status.value} if queue_told and winner is not None else {}
        uow.jobs.transition(
            claim.lease,
            status,
            now,
            selected_agent_id=winner.agent_id if winner else None,
            result=winner.result if winner else None,
            error=error,
            **told,
        )
        # Statistics and circuit state move in the same transaction as the job's end.
        row_of = {r.agent_id: r for r in rows}  # one row per agent per distribution
        evidence = uow.agents.evidence(claim.spec.category, (a.id for a in locked))
        learned: dict[str, Evidence] = {}
        records = []
        for agent in locked:
            r = row_of.get(agent.id)
            if r is None or r.started_at is None:
                continue  # a hedge reserve never called says nothing about its agent
            out = outcome_of(r)
            seen = seen_of(out)
            if seen is not None:
                learned[agent.id] = evidence.get(agent.id, Evidence()).observe(
                    seen, out.latency_ms, now.timestamp(), s.ranking_half_life_seconds
                )
            c = after_outcome(
                Circuit(agent.consecutive_failures, agent.circuit_open_until),
                out,
                now,
                threshold=s.circuit_failure_threshold,
                reset_seconds=s.circuit_reset_seconds,
            )
            records.append((agent.id, apply_outcome(stats_of(agent), out, won=r.won), c))
        uow.agents.save_records(now, records)
        uow.agents.save_evidence(claim.spec.category, learned)
        end = JobEnd(
            qid,
            claim.job_id,
            status,
            winner.agent_name if winner else None,
            winner.latency_ms if winner else None,
            error,
        )
        called = sum(r.started_at is not None for r in rows)
        return end, (winner.result if winner else None), winner, decided, called

    rules = rules_for(s, claim.spec)
    closed: list[_Closed] = []
    end, result, winner, decided, called = await in_transaction(deps, decide)
    for c in closed:
        deps.events.agent_changed(
            claim.job_id,
            qid,
            c.agent_id,
            c.agent_name,
            AgentRunStatus.CANCELLED.value,
            distribution_id=dist.distribution_id,
            latency_ms=c.latency_ms,
            error=c.error,
        )
    deps.events.job_changed(
        claim.job_id,
        qid,
        end.status.value,
        agent_id=winner.agent_id if winner else None,
        agent_name=end.winner,
        error=end.error,
        policy=rules.rule.policy.value,
        strategy=rules.strategy.label(),
        decided=decided,
        agents_called=called,
    )
    agent_id = winner.agent_id if winner else None
    if queue_told and winner is not None:
        return end  # the queue has the result, and the job's row says so
    problem = await queue_side(deps, claim.spec).report(
        qid,
        end.status,
        taken.queue_status.value,
        result=result,
        agent_id=agent_id,
        error=end.error,
    )
    if problem is None:
        await in_transaction(deps, lambda uow: uow.jobs.mark_queue_status(claim.job_id, end.status))
    else:
        log.warning("queue not told %s for %s yet: %s", end.status, qid, problem)
    return dataclasses.replace(end, report_problem=problem)


async def end_unstarted(deps: Deps, claim: Claim, status: JobStatus, reason: str) -> JobEnd:
    """End a job that no agent will work on (EXPIRED, or FAILED when attempts are spent)."""
    qid = claim.spec.queue_task_id

    def finish(uow: UnitOfWork) -> str:
        job = uow.jobs.get_leased(claim.lease)
        expected = job.queue_status or job.status
        # The fenced local ending comes first: a worker that lost its lease fails here and
        # never reaches the queue; if the report below fails, the sweep's outbox resends it.
        uow.jobs.transition(claim.lease, status, utcnow(), error=reason, queue_status=expected)
        return expected

    expected = await in_transaction(deps, finish)
    deps.events.job_changed(claim.job_id, qid, status.value, error=reason)
    problem = await queue_side(deps, claim.spec).report(qid, status, expected, error=reason)
    if problem is None:
        await in_transaction(deps, lambda uow: uow.jobs.mark_queue_status(claim.job_id, status))
    return JobEnd(qid, claim.job_id, status, error=reason, report_problem=problem)
