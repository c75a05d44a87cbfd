"""Finish a distribution: pick the result, end the job, update agent stats, tell the queue."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.bootstrap import prefect_events as events
from agent_dispatch.db.agent_repository import stats_of
from agent_dispatch.db.models import JobDistributionAgent
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.breaker import Circuit, after_outcome
from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.selection import verdict
from agent_dispatch.domain.stats import apply_outcome
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind, JobStatus
from agent_dispatch.tasks.dbio import in_transaction
from agent_dispatch.tasks.job_steps import Taken
from agent_dispatch.tasks.queue_io import report_status


@dataclasses.dataclass(frozen=True, slots=True)
class JobEnd:
    queue_task_id: str
    job_id: str
    status: JobStatus
    winner: str | None = None
    winner_latency_ms: float | None = None
    error: str | None = None
    report_problem: str | None = None


def _outcome(row: JobDistributionAgent) -> AgentOutcome:
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


@task(name="finish", cache_policy=NO_CACHE, task_run_name="finish {taken.claim.spec.queue_task_id}")
async def finish_job(
    taken: Taken, winner_row_id: str | None, first_result_at: dt.datetime | None
) -> JobEnd:
    rt = get_runtime()
    s = rt.settings
    claim, dist = taken.claim, taken.distribution
    qid = claim.spec.queue_task_id

    def decide(uow: UnitOfWork) -> tuple[JobEnd, Any, str | None]:
        now = utcnow()
        # Agents first, in id order (as distributions.create does): setting selected_agent_id
        # below takes a key-share lock on the winner, and a FOR UPDATE after it deadlocks
        # with another finish of the same agent holding its own key-share.
        locked = uow.agents.lock(a.agent_id for a in dist.assignments)
        for row in uow.distributions.rows(dist.distribution_id):
            if row.status in (AgentRunStatus.ASSIGNED, AgentRunStatus.WORKING):
                # A call cancelled before it could record its own end.
                uow.distributions.move_agent(
                    claim.lease,
                    row.id,
                    AgentRunStatus.CANCELLED,
                    finished_at=now,
                    failure_kind=FailureKind.CANCELLED.value,
                    error="cancelled before the call finished",
                )
        uow.session.expire_all()
        rows = list(uow.distributions.rows(dist.distribution_id))
        outcomes = {r.agent_id or r.agent_name: _outcome(r) for r in rows}
        names = {r.agent_id or r.agent_name: r.agent_name for r in rows}
        winner = next((r for r in rows if r.id == winner_row_id), None)
        if winner is not None and winner.status == AgentRunStatus.COMPLETED:
            winner.won = True
            status, error = JobStatus.COMPLETED, None
        else:
            winner = None
            v = verdict(outcomes, names)
            status, error = v.status, v.error
            if status is JobStatus.FAILED and claim.spec.is_expired(now):
                status, error = (
                    JobStatus.EXPIRED,
                    "expired before any agent answered; " + (error or ""),
                )
        uow.distributions.finish(
            claim.lease,
            dist.distribution_id,
            status.value,
            now,
            winner_agent_id=winner.agent_id if winner else None,
            error=error,
            first_result_at=first_result_at,
        )
        uow.jobs.transition(
            claim.lease,
            status,
            now,
            selected_agent_id=winner.agent_id if winner else None,
            result=winner.result if winner else None,
            error=error,
        )
        # Statistics and circuit state move in the same transaction as the job's end.
        # One row per agent in a distribution (a unique constraint), so a lookup is enough.
        row_of = {r.agent_id: r for r in rows}
        for agent in locked:
            r = row_of.get(agent.id)
            if r is None:
                continue
            out = _outcome(r)
            uow.agents.save_stats(agent, apply_outcome(stats_of(agent), out, won=r.won), now)
            c = after_outcome(
                Circuit(agent.consecutive_failures, agent.circuit_open_until),
                out,
                now,
                threshold=s.circuit_failure_threshold,
                reset_seconds=s.circuit_reset_seconds,
            )
            agent.consecutive_failures, agent.circuit_open_until = (
                c.consecutive_failures,
                c.open_until,
            )
        end = JobEnd(
            qid,
            claim.job_id,
            status,
            winner.agent_name if winner else None,
            winner.latency_ms if winner else None,
            error,
        )
        return end, (winner.result if winner else None), (winner.agent_id if winner else None)

    end, result, agent_id = await in_transaction(decide)
    events.job_status_changed(
        claim.job_id,
        qid,
        end.status.value,
        agent_id=agent_id,
        agent_name=end.winner,
        error=end.error,
    )
    problem = await report_status(
        qid, end.status.value, taken.queue_status, result=result, agent_id=agent_id, error=end.error
    )

    if problem is None:
        await in_transaction(lambda uow: uow.jobs.mark_queue_status(claim.job_id, end.status))
    else:
        get_run_logger().warning("queue not told %s for %s yet: %s", end.status, qid, problem)
    return dataclasses.replace(end, report_problem=problem)
