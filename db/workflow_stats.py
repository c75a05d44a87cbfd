"""Per-step and whole-run figures of workflows, read straight from step and parent jobs.

Small sets (a few thousand runs) are summarised in Python; the analytics tables can take
these over when the reporting flow learns about steps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from agent_dispatch.db.models import Job
from agent_dispatch.db.workflow_models import WorkflowRun


@dataclasses.dataclass(frozen=True, slots=True)
class StepFigures:
    workflow: str
    step_id: str
    tries: int  # step jobs, every try counted
    completed: int
    failed: int  # FAILED, EXPIRED or CANCELLED
    skipped: int
    p50_ms: float | None  # taken -> finished, completed tries only
    max_ms: float | None

    @property
    def success_rate(self) -> float | None:
        decided = self.completed + self.failed
        return self.completed / decided if decided else None


@dataclasses.dataclass(frozen=True, slots=True)
class RunFigures:
    workflow: str
    runs: int
    completed: int
    failed: int  # FAILED, EXPIRED or CANCELLED
    running: int
    resumed: int  # runs started more than once (a lost worker)
    p50_s: float | None  # whole run, first start -> parent finished
    max_s: float | None


def _ms(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return (end - start).total_seconds() * 1000 if start and end else None


def _p50_max(values: Sequence[float]) -> tuple[float | None, float | None]:
    return (statistics.median(values), max(values)) if values else (None, None)


def step_figures(session: Session, since: dt.datetime | None = None) -> list[StepFigures]:
    parent = aliased(Job)
    stmt = select(parent.workflow, Job.step_id, Job.status, Job.distributed_at, Job.finished_at)
    stmt = stmt.join(parent, parent.id == Job.parent_job_id)
    if since is not None:
        stmt = stmt.where(Job.created_at >= since)
    groups: dict[tuple[str, str], list[tuple[str, float | None]]] = defaultdict(list)
    for wf, step, status, started, finished in session.execute(stmt):
        groups[(wf or "?", step or "?")].append((status, _ms(started, finished)))
    out = []
    for (wf, step), rows in sorted(groups.items()):
        done = [ms for status, ms in rows if status == "COMPLETED" and ms is not None]
        p50, top = _p50_max(done)
        out.append(
            StepFigures(
                wf,
                step,
                len(rows),
                sum(1 for s, _ in rows if s == "COMPLETED"),
                sum(1 for s, _ in rows if s in ("FAILED", "EXPIRED", "CANCELLED")),
                sum(1 for s, _ in rows if s == "SKIPPED"),
                p50,
                top,
            )
        )
    return out


def run_figures(session: Session, since: dt.datetime | None = None) -> list[RunFigures]:
    stmt = select(
        WorkflowRun.workflow,
        WorkflowRun.starts,
        WorkflowRun.started_at,
        Job.status,
        Job.finished_at,
    ).join(Job, Job.id == WorkflowRun.job_id)
    if since is not None:
        stmt = stmt.where(WorkflowRun.started_at >= since)
    groups: dict[str, list[tuple[str, int, float | None]]] = defaultdict(list)
    for wf, starts, started, status, finished in session.execute(stmt):
        ms = _ms(started, finished)
        groups[wf].append((status, starts, ms / 1000 if ms is not None else None))
    out = []
    for wf, rows in sorted(groups.items()):
        p50, top = _p50_max([s for st, _, s in rows if st == "COMPLETED" and s is not None])
        out.append(
            RunFigures(
                wf,
                len(rows),
                sum(1 for st, _, _ in rows if st == "COMPLETED"),
                sum(1 for st, _, _ in rows if st in ("FAILED", "EXPIRED", "CANCELLED")),
                sum(1 for st, _, _ in rows if st in ("OPEN", "DISTRIBUTED", "IN_PROGRESS")),
                sum(1 for _, n, _ in rows if n > 1),
                p50,
                top,
            )
        )
    return out
