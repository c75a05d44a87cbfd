"""Rows for the dispatch figures: ended jobs, their agent rows and exploratory picks.

What the tables hold: an agent row per reserved agent (`started_at` NULL when the race never
started it), `won`, and the distribution's `decisions` (a learned pick carries
`exploration`). The dispatch policy and the launch reason are not stored (events only); the
job's own `resultStrategy` is (`jobs.result_strategy`). reporting/policy.py does the rest.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection, select

from agent_dispatch.db import reporting_sql as sql
from agent_dispatch.db.models import Job, JobDistributionAgent, JobDistributionRecord, on_queue
from agent_dispatch.domain.periods import Window
from agent_dispatch.domain.statuses import JOB_TERMINAL

A = JobDistributionAgent.__table__
D = JobDistributionRecord.__table__
J = Job.__table__


def _ended(window: Window) -> list[Any]:
    # The job figures' rule: queue tasks that reached a terminal status in the window.
    return [
        sql.in_window(J.c.finished_at, window.start, window.end),
        J.c.status.in_([s.value for s in JOB_TERMINAL]),
        on_queue(),
    ]


def ended_jobs(conn: Connection, window: Window) -> pd.DataFrame:
    """job_id, category, result_strategy (the task's own, or None) of every ended job."""
    stmt = select(J.c.id, J.c.category, J.c.result_strategy).where(*_ended(window))
    rows = [(r[0], r[1], r[2]) for r in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=["job_id", "category", "result_strategy"])


def agent_rows(conn: Connection, window: Window) -> pd.DataFrame:
    """One row per reserved agent of those jobs' attempts: started_at (None: never), won."""
    stmt = (
        select(D.c.job_id, A.c.distribution_id, A.c.agent_id, A.c.started_at, A.c.won)
        .select_from(A.join(D, A.c.distribution_id == D.c.id).join(J, D.c.job_id == J.c.id))
        .where(*_ended(window))
    )
    frame = pd.DataFrame(
        [tuple(r) for r in conn.execute(stmt)],
        columns=["job_id", "distribution_id", "agent_id", "started_at", "won"],
    )
    frame["started_at"] = sql.to_utc_series(frame["started_at"])
    frame["won"] = frame["won"].astype(bool)
    return frame


def exploration_picks(conn: Connection, window: Window) -> pd.DataFrame:
    """distribution_id, agent_id of every chosen agent that Thompson sampling put there."""
    stmt = (
        select(D.c.id, D.c.decisions)
        .select_from(D.join(J, D.c.job_id == J.c.id))
        .where(*_ended(window))
    )
    picks = [
        (dist_id, d.get("agent_id"))
        for dist_id, decisions in conn.execute(stmt)
        for d in decisions or []
        if d.get("chosen") and d.get("exploration")
    ]
    return pd.DataFrame(picks, columns=["distribution_id", "agent_id"])
