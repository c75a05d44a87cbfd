"""Jobs written through the real repositories for the dispatch figures: hedged, saved,
all-at-once and expired jobs with chosen start offsets and exploratory picks."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from agent_dispatch.db.models import Agent, utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.matching import Decision
from agent_dispatch.domain.model import JobSpec, ResultStrategy, StrategyKind
from agent_dispatch.domain.statuses import AgentRunStatus, DistributionStatus, JobStatus

MS = dt.timedelta(milliseconds=1)


class Transactions(Protocol):
    def uow(self) -> UnitOfWork: ...


def add_agents(rt: Transactions, *names: str) -> dict[str, str]:
    with rt.uow() as uow:
        ids = {
            n: uow.agents.add(
                Agent(name=n, url=f"http://127.0.0.1:9/{n}", categories=["text", "code"])
            ).id
            for n in names
        }
        uow.commit()
    return ids


def run_job(
    rt: Transactions,
    qid: str,
    category: str,
    agents: dict[str, str],
    calls: list[tuple[str, float | None, str]],  # (agent, start offset ms or None, outcome)
    explored: frozenset[str] = frozenset(),
    strategy: ResultStrategy | None = None,
) -> None:
    """One job through intake, claim, distribution and its agents' moves, then its end."""
    t0 = utcnow() - dt.timedelta(seconds=10)  # every end before `stats` reads
    with rt.uow() as uow:
        uow.jobs.intake(JobSpec(qid, qid, category, result_strategy=strategy))
        (lease,) = uow.jobs.claim_open([qid], "pytest", 30, t0)
        if not calls:
            uow.jobs.transition(lease, JobStatus.EXPIRED, t0, error="expired before dispatch")
            uow.commit()
            return
        decisions = [
            Decision(agents[n], n, True, True, "chosen", 0.5, rank, 0.3, 0.7, 100.0, n in explored)
            for rank, (n, _, _) in enumerate(calls, start=1)
        ]
        dist = uow.distributions.create(lease, decisions, t0)
        uow.jobs.transition(lease, JobStatus.DISTRIBUTED, t0)
        uow.jobs.transition(lease, JobStatus.IN_PROGRESS, t0)
        rows = {a.agent_name: a.row_id for a in dist.assignments}
        fields: dict[str, Any]
        for name, offset, outcome in calls:
            end = t0 + 900 * MS
            if offset is None:  # a reserve the race never needed
                target, fields = AgentRunStatus.CANCELLED, {"failure_kind": "cancelled"}
            else:
                uow.distributions.move_agent(
                    lease, rows[name], AgentRunStatus.WORKING, started_at=t0 + offset * MS
                )
                target = AgentRunStatus.COMPLETED if outcome == "won" else AgentRunStatus.FAILED
                fields = {"won": outcome == "won", "latency_ms": 100.0}
            uow.distributions.move_agent(lease, rows[name], target, finished_at=end, **fields)
        uow.distributions.finish(lease, dist.distribution_id, DistributionStatus.COMPLETED, end)
        uow.jobs.transition(lease, JobStatus.COMPLETED, end)
        uow.commit()


def seed_four_jobs(rt: Transactions, jitter_ms: float = 10) -> None:
    """text (hedged by rule): a backup 500 ms late that won, and a saved exploratory reserve;
    code: three calls started within `jitter_ms` under the task's own quorum, one expired."""
    ids = add_agents(rt, "a1", "a2", "a3")
    run_job(rt, "t-hedged", "text", ids, [("a1", 0, "failed"), ("a2", 500, "won")])
    run_job(rt, "t-saved", "text", ids, [("a1", 0, "won"), ("a2", None, "")], frozenset({"a2"}))
    run_job(
        rt,
        "c-quorum",
        "code",
        ids,
        [("a1", 0, "failed"), ("a2", jitter_ms / 2, "failed"), ("a3", jitter_ms, "won")],
        frozenset({"a3"}),
        ResultStrategy(StrategyKind.QUORUM, 2),
    )
    run_job(rt, "c-expired", "code", ids, [])  # ended without a call: counts as a job
