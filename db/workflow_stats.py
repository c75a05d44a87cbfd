"""The rows behind workflow figures: one per step job, one per workflow run.

`workflows stats` reads every row; the analytics run reads the steps and runs that ended in
its window. agent_dispatch.reporting.workflows turns both into the same figures.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection, select
from sqlalchemy.orm import aliased

from agent_dispatch.db.models import Job
from agent_dispatch.db.workflow_models import WorkflowRun
from agent_dispatch.domain.periods import Window

STEP_COLUMNS = ["workflow", "step_id", "status", "started_at", "finished_at"]
RUN_COLUMNS = ["workflow", "starts", "status", "started_at", "finished_at"]


def _frame(conn: Connection, stmt: Any, columns: list[str]) -> pd.DataFrame:
    rows = conn.execute(stmt).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    for c in ("started_at", "finished_at"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    return frame


def step_rows(conn: Connection, window: Window | None = None) -> pd.DataFrame:
    """Every try of every step: its workflow, step id, status, taken and finished times
    (only the tries that finished in `window`, when given)."""
    parent = aliased(Job)
    stmt = select(
        parent.workflow, Job.step_id, Job.status, Job.distributed_at, Job.finished_at
    ).join(parent, parent.id == Job.parent_job_id)
    if window is not None:
        stmt = stmt.where(Job.finished_at >= window.start, Job.finished_at < window.end)
    return _frame(conn, stmt, STEP_COLUMNS)


def run_rows(conn: Connection, window: Window | None = None) -> pd.DataFrame:
    """Every workflow run: its workflow, starts, the parent's status, first start and end
    (only the runs whose parent finished in `window`, when given)."""
    stmt = select(
        WorkflowRun.workflow,
        WorkflowRun.starts,
        Job.status,
        WorkflowRun.started_at,
        Job.finished_at,
    ).join(Job, Job.id == WorkflowRun.job_id)
    if window is not None:
        stmt = stmt.where(Job.finished_at >= window.start, Job.finished_at < window.end)
    return _frame(conn, stmt, RUN_COLUMNS)
