"""Dispatch figures on real PostgreSQL, from rows written through the real repositories:
calls per job, reserves never started, hedged jobs, policies, strategies, exploration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Agent, utcnow
from agent_dispatch.domain.matching import Decision
from agent_dispatch.domain.model import JobSpec, ResultStrategy, StrategyKind
from agent_dispatch.domain.statuses import AgentRunStatus, DistributionStatus, JobStatus
from agent_dispatch.reporting.stats import render_text
from agent_dispatch.services import stats
from tests.conftest import make_settings

pytestmark = [pytest.mark.postgres]

MS = dt.timedelta(milliseconds=1)


@pytest.fixture
def rt(database_url: str) -> Iterator[Runtime]:
    # 'text' is hedged by its category rule; 'code' keeps the global all-at-once.
    r = Runtime(make_settings(database_url, dispatch_rules={"text": {"policy": "hedge"}}))
    yield r
    r.dispose()


def add_agents(rt: Runtime, *names: str) -> dict[str, str]:
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
    rt: Runtime,
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


def test_stats_show_calls_per_job_hedging_policies_strategies_and_exploration(
    rt: Runtime,
) -> None:
    ids = add_agents(rt, "a1", "a2", "a3")
    # text (hedge): the backup started 500 ms after the primary failed, and won
    run_job(rt, "t-hedged", "text", ids, [("a1", 0, "failed"), ("a2", 500, "won")])
    # text (hedge): the primary won; the exploratory backup was never started
    run_job(rt, "t-saved", "text", ids, [("a1", 0, "won"), ("a2", None, "")], frozenset({"a2"}))
    # code (all-at-once, the task's own quorum): three started together (launch jitter only)
    run_job(
        rt,
        "c-quorum",
        "code",
        ids,
        [("a1", 0, "failed"), ("a2", 5, "failed"), ("a3", 10, "won")],
        frozenset({"a3"}),
        ResultStrategy(StrategyKind.QUORUM, 2),
    )
    run_job(rt, "c-expired", "code", ids, [])  # ended without a call: counts as a job

    doc = stats.stats_document(rt, utcnow() - dt.timedelta(hours=1), utcnow())
    d = doc["dispatch"]
    overall = d["overall"]
    assert (overall["jobs"], overall["calls_started"], overall["calls_per_job"]) == (4, 6, 1.5)
    assert (overall["reserved_unstarted"], overall["hedged_jobs"]) == (1, 1)
    assert overall["by_policy"] == {"all-at-once": 2, "hedge": 2}
    assert overall["by_strategy"] == {"first": 3, "quorum": 1}
    assert (overall["exploration_picks"], overall["exploration_started"]) == (2, 1)
    assert (overall["exploration_wins"], overall["exploration_win_rate"]) == (1, 1.0)
    text, code = ({r["category"]: r for r in d["categories"]}[c] for c in ("text", "code"))
    assert (text["jobs"], text["calls_started"], text["reserved_unstarted"]) == (2, 3, 1)
    assert (text["hedged_jobs"], text["by_policy"]) == (1, {"hedge": 2})
    assert (text["exploration_picks"], text["exploration_win_rate"]) == (1, None)
    assert (code["jobs"], code["calls_started"], code["hedged_jobs"]) == (2, 3, 0)
    assert code["by_strategy"] == {"first": 1, "quorum": 1}

    lines = render_text(doc).splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("dispatch ("))
    rows = {line.split()[0]: line for line in lines[head + 3 : head + 6]}
    assert rows["*"].split()[:6] == ["*", "4", "6", "1.50", "1", "1"]
    assert "all-at-once 2, hedge 2" in rows["*"] and "first 3, quorum 1" in rows["*"]
    assert rows["text"].split()[:6] == ["text", "2", "3", "1.50", "1", "1"]
    assert "2 (1 called)" in rows["*"] and "1 (100.0%)" in rows["*"]
