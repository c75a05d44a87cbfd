"""Rows for the dispatch figures: counts per (category, task strategy), exploratory picks.

What the tables hold: an agent row per reserved agent (`started_at` NULL when the race never
started it), `won`, and the distribution's `decisions` (a learned pick carries
`exploration`). The dispatch policy and the launch reason are not stored (events only); the
job's own `resultStrategy` is (`jobs.result_strategy`). reporting/policy.py does the rest.

Each ended job carries the counts of its agent rows (migration 0010), so the counting is one
scan of the jobs grouped per category and strategy: a window of millions of calls comes back
as a few rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection, Text, cast, func, select

from agent_dispatch.db import reporting_facts as facts
from agent_dispatch.db import reporting_sql as sql
from agent_dispatch.db.models import Job, JobDistributionAgent, JobDistributionRecord, on_queue
from agent_dispatch.domain.periods import Window
from agent_dispatch.domain.statuses import JOB_TERMINAL

A = JobDistributionAgent.__table__
D = JobDistributionRecord.__table__
J = Job.__table__
COUNT_COLUMNS = ["category", "own_strategy", "jobs", "calls_started", "reserved_unstarted",
                 "hedged_jobs"]  # fmt: skip
# Both serialisations (PostgreSQL jsonb's text, json.dumps on SQLite) write `"key": value`:
# only attempts with an exploratory pick are read and parsed.
_EXPLORED = '%"exploration": true%'


def _ended(window: Window) -> list[Any]:
    # The job figures' rule: queue tasks that reached a terminal status in the window.
    return [
        sql.in_window(J.c.finished_at, window.start, window.end),
        J.c.status.in_([s.value for s in JOB_TERMINAL]),
        on_queue(),
    ]


def dispatch_counts(conn: Connection, window: Window, late_ms: float) -> pd.DataFrame:
    """Ended jobs per (category, the task's own strategy as JSON text or None): jobs, calls
    started, agents reserved but never started, jobs with a call started `late_ms` or more
    after the first call of its attempt.

    One scan of the jobs: each ended job carries these counts of its agent rows
    (db.reporting_facts, kept by the triggers of migration 0010)."""
    F = facts.JOBS
    own = cast(F.c.result_strategy, Text)
    stmt = (
        select(
            F.c.category,
            own,
            func.count(),
            func.coalesce(func.sum(F.c.calls_started), 0),
            func.coalesce(func.sum(F.c.calls_unstarted), 0),
            func.count().filter(F.c.call_spread_ms >= late_ms),
        )
        .where(
            sql.in_window(F.c.finished_at, window.start, window.end),
            F.c.status.in_([s.value for s in JOB_TERMINAL]),
            facts.on_queue(),
        )
        .group_by(F.c.category, own)
    )
    rows = [
        (cat, None if text in (None, "null") else text, *(int(v) for v in counts))
        for cat, text, *counts in conn.execute(stmt)
    ]
    return pd.DataFrame(rows, columns=COUNT_COLUMNS)


def exploration_picks(conn: Connection, window: Window) -> pd.DataFrame:
    """category, started, won of every chosen agent that Thompson sampling put there."""
    explored = cast(D.c.decisions, Text).like(_EXPLORED)
    dists = select(D.c.id, D.c.decisions).select_from(D.join(J, D.c.job_id == J.c.id))
    picked = {
        (dist_id, d.get("agent_id"))
        for dist_id, decisions in conn.execute(dists.where(*_ended(window), explored))
        for d in decisions or []
        if d.get("chosen") and d.get("exploration")
    }
    calls = (
        select(
            J.c.category, A.c.distribution_id, A.c.agent_id, A.c.started_at.is_not(None), A.c.won
        )
        .select_from(A.join(D, A.c.distribution_id == D.c.id).join(J, D.c.job_id == J.c.id))
        .where(*_ended(window), explored)
    )
    rows = [
        (cat, bool(started), bool(won))
        for cat, dist_id, agent_id, started, won in conn.execute(calls)
        if (dist_id, agent_id) in picked
    ]
    return pd.DataFrame(rows, columns=["category", "started", "won"])
