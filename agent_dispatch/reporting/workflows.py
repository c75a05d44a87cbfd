"""Workflow figures from step and run rows (db.workflow_stats): pandas, no I/O.

Per (workflow, step id): tries, completed, failed, skipped, success rate and the latency of
completed tries (taken -> finished). Per workflow: runs, completed, failed, still running,
resumed (started more than once: a lost worker), success rate and the duration of completed
runs (first start -> parent finished). Percentiles interpolate as percentile_cont does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from agent_dispatch.domain.statuses import JOB_ACTIVE, JobStatus

DONE = JobStatus.COMPLETED.value
# A step or run that ended without its result; SKIPPED is neither success nor failure.
ENDED_BADLY = [s.value for s in (JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELLED)]
RUNNING = [JobStatus.OPEN.value, *(s.value for s in JOB_ACTIVE)]


def _rate(completed: int, failed: int) -> float | None:
    decided = completed + failed
    return completed / decided if decided else None


@dataclasses.dataclass(frozen=True, slots=True)
class StepFigures:
    workflow: str
    step_id: str
    tries: int  # step jobs, every try counted
    completed: int
    failed: int  # FAILED, EXPIRED or CANCELLED
    skipped: int
    p50_ms: float | None  # taken -> finished, completed tries only
    p95_ms: float | None
    max_ms: float | None

    @property
    def success_rate(self) -> float | None:
        return _rate(self.completed, self.failed)


@dataclasses.dataclass(frozen=True, slots=True)
class RunFigures:
    workflow: str
    runs: int
    completed: int
    failed: int  # FAILED, EXPIRED or CANCELLED
    running: int
    resumed: int  # runs started more than once (a lost worker)
    p50_s: float | None  # whole run, first start -> parent finished, completed runs only
    p95_s: float | None
    max_s: float | None

    @property
    def success_rate(self) -> float | None:
        return _rate(self.completed, self.failed)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowFigures:
    steps: list[StepFigures] = dataclasses.field(default_factory=list)
    runs: list[RunFigures] = dataclasses.field(default_factory=list)

    def document(self) -> dict[str, list[dict[str, Any]]]:
        """JSON-friendly: every field plus the success rate."""
        return {
            "runs": [{**dataclasses.asdict(r), "success_rate": r.success_rate} for r in self.runs],
            "steps": [
                {**dataclasses.asdict(s), "success_rate": s.success_rate} for s in self.steps
            ],
        }


def _spread(values: pd.Series) -> tuple[float | None, float | None, float | None]:
    """p50, p95 and max of the values (None when there are none)."""
    v = values.dropna().to_numpy(dtype=np.float64)
    if not len(v):
        return None, None, None
    p50, p95 = np.percentile(v, [50, 95])  # linear: percentile_cont's interpolation
    return float(p50), float(p95), float(v.max())


def _elapsed(frame: pd.DataFrame) -> pd.Series:
    return (frame["finished_at"] - frame["started_at"]).dt.total_seconds()


def _count(group: pd.DataFrame, statuses: list[str]) -> int:
    return int(group["status"].isin(statuses).sum())


def step_figures(rows: pd.DataFrame) -> list[StepFigures]:
    out = []
    rows = rows.assign(workflow=rows["workflow"].fillna("?"), step_id=rows["step_id"].fillna("?"))
    for (wf, step), group in rows.groupby(["workflow", "step_id"], sort=True):
        done = group[group["status"] == DONE]
        p50, p95, top = _spread(_elapsed(done) * 1000)
        out.append(
            StepFigures(
                str(wf),
                str(step),
                len(group),
                len(done),
                _count(group, ENDED_BADLY),
                _count(group, [JobStatus.SKIPPED.value]),
                p50,
                p95,
                top,
            )
        )
    return out


def run_figures(rows: pd.DataFrame) -> list[RunFigures]:
    out = []
    for wf, group in rows.groupby("workflow", sort=True):
        done = group[group["status"] == DONE]
        p50, p95, top = _spread(_elapsed(done))
        out.append(
            RunFigures(
                str(wf),
                len(group),
                len(done),
                _count(group, ENDED_BADLY),
                _count(group, RUNNING),
                int((group["starts"] > 1).sum()),
                p50,
                p95,
                top,
            )
        )
    return out


def figures(steps: pd.DataFrame, runs: pd.DataFrame) -> WorkflowFigures:
    return WorkflowFigures(step_figures(steps), run_figures(runs))
