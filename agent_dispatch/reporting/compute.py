"""Glue between reads and metrics: what one analytics step computes for one window.

On PostgreSQL one pass over the execution rows (db.reporting_fine, rolled up by
reporting.fine) serves the hour rows, the day rows and, when the window covers it, the window
overview; SQLite runs the plain queries of db.reporting_queries per kind. Both give the same
numbers.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from agent_dispatch.db.reporting_fine import Fine
from agent_dispatch.db.reporting_models import ALL_CATEGORIES as ALL
from agent_dispatch.db.reporting_reader import ReportingReader
from agent_dispatch.domain.periods import STEP, PeriodKind, Window, aligned
from agent_dispatch.reporting import fine, policy
from agent_dispatch.reporting.aggregate import agent_metrics, job_metrics, job_totals
from agent_dispatch.reporting.policy import DispatchFigures, Rules
from agent_dispatch.reporting.workflows import WorkflowFigures, figures


def _hours(kind: PeriodKind) -> float:
    return STEP[kind].total_seconds() / 3600


def agent_periods(reader: ReportingReader, kind: PeriodKind, window: Window) -> pd.DataFrame:
    """report_agent_period rows for every whole bucket overlapping `window`."""
    w = aligned(window, kind)
    if reader.one_pass:
        raw = fine.agent_counts(reader.fine_calls(w), kind)
    else:
        raw = reader.agent_counts(w, kind, "both")
    return agent_metrics(raw, kind, _hours(kind))


def job_periods(reader: ReportingReader, kind: PeriodKind, window: Window) -> pd.DataFrame:
    """report_job_period rows for every whole bucket overlapping `window`."""
    w = aligned(window, kind)
    if reader.one_pass:
        raw = fine.job_counts(reader.fine_jobs(w), kind)
    else:
        raw = reader.job_counts(w, kind, "both")
    return job_metrics(raw, kind)


@dataclasses.dataclass(frozen=True)
class Periods:
    """The report rows of one period kind for its whole buckets `window`."""

    kind: PeriodKind
    window: Window
    agents: pd.DataFrame
    jobs: pd.DataFrame

    @property
    def source_rows(self) -> int:
        """Calls plus jobs counted in these buckets (from the all-categories rows)."""
        calls = self.agents.loc[self.agents["category"] == ALL, "calls"].sum()
        jobs = self.jobs.loc[self.jobs["category"] == ALL, "jobs"].sum()
        return int(calls) + int(jobs)


@dataclasses.dataclass(frozen=True)
class Pass:
    """Fine groups of one pass over a window (PostgreSQL), reusable for anything inside it."""

    calls: Fine
    jobs: Fine

    def covers(self, window: Window) -> bool:
        w = self.calls.window
        return w.start <= window.start and window.end <= w.end


def periods(
    reader: ReportingReader, windows: dict[PeriodKind, Window]
) -> tuple[list[Periods], Pass | None]:
    """Report rows of each kind's whole buckets; on PostgreSQL from a single pass."""
    spans = {kind: aligned(w, kind) for kind, w in windows.items()}
    if not spans:
        return [], None
    if not reader.one_pass:
        out = [
            Periods(kind, w, agent_periods(reader, kind, w), job_periods(reader, kind, w))
            for kind, w in spans.items()
        ]
        return out, None
    cover = Window(min(w.start for w in spans.values()), max(w.end for w in spans.values()))
    done = Pass(reader.fine_calls(cover), reader.fine_jobs(cover))
    out = []
    for kind, w in spans.items():
        calls, jobs = done.calls.within(w), done.jobs.within(w)
        out.append(
            Periods(
                kind,
                w,
                agent_metrics(fine.agent_counts(calls, kind), kind, _hours(kind)),
                job_metrics(fine.job_counts(jobs, kind), kind),
            )
        )
    return out, done


@dataclasses.dataclass(frozen=True)
class Overview:
    """Totals over a whole window: the leaderboard, `stats`, and the dashboard's headline."""

    window: Window
    agents: pd.DataFrame  # one row per agent (category '*'), agent report columns
    jobs: dict[str, float | int | None]  # job report columns for the whole window
    histogram: pd.DataFrame  # agent_name, bin, calls (completed-call latencies)
    workflows: WorkflowFigures = dataclasses.field(default_factory=WorkflowFigures)
    dispatch: DispatchFigures = dataclasses.field(default_factory=DispatchFigures)

    @property
    def calls(self) -> dict[str, int]:
        """Call counts over all agents: calls, completed, failed, cancelled, blocked, wins."""
        cols = ("calls", "completed", "failed", "cancelled", "blocked", "wins")
        return {c: int(self.agents[c].sum()) for c in cols}


def _whole_hours(window: Window) -> bool:
    return aligned(window, "hour") == window


def overview(
    reader: ReportingReader, window: Window, done: Pass | None = None, rules: Rules | None = None
) -> Overview:
    """Window totals; from `done` when that pass covers the window in whole hours.

    `rules` resolves each job's dispatch policy and strategy; without it (no settings at
    hand) the dispatch figures are left empty.
    """
    flows = figures(reader.workflow_steps(window), reader.workflow_runs(window))
    dispatch = (
        policy.figures(*reader.dispatch_rows(window, policy.LATE_MS), rules)
        if rules
        else DispatchFigures()
    )
    if reader.one_pass:
        if done is not None and _whole_hours(window) and done.covers(window):
            calls, jobs_fine = done.calls.within(window), done.jobs.within(window)
        else:
            calls, jobs_fine = reader.fine_calls(window), reader.fine_jobs(window)
        agents = agent_metrics(fine.agent_counts(calls, None, split=False), "window", window.hours)
        jobs = job_metrics(fine.job_counts(jobs_fine, None, split=False), "window")
        return Overview(
            window, agents, job_totals(jobs), fine.latency_histogram(calls), flows, dispatch
        )
    agents = agent_metrics(reader.agent_counts(window, None, "all"), "window", window.hours)
    jobs = job_metrics(reader.job_counts(window, None, "all"), "window")
    histogram = reader.latency_histogram(window)
    return Overview(window, agents, job_totals(jobs), histogram, flows, dispatch)
