"""Glue between queries and metrics: what one analytics step computes for one window.

On PostgreSQL one pass over the execution rows (reporting.fine) serves the hour rows, the day
rows and, when the window covers it, the window overview; SQLite runs the plain queries of
reporting.queries per kind. Both give the same numbers.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
from sqlalchemy import Connection

from agent_dispatch.db.reporting_models import ALL_CATEGORIES as ALL
from agent_dispatch.reporting import fine, queries
from agent_dispatch.reporting.aggregate import agent_metrics, job_metrics, job_totals
from agent_dispatch.reporting.window import STEP, PeriodKind, Window, aligned


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _hours(kind: PeriodKind) -> float:
    return STEP[kind].total_seconds() / 3600


def agent_periods(conn: Connection, kind: PeriodKind, window: Window) -> pd.DataFrame:
    """report_agent_period rows for every whole bucket overlapping `window`."""
    w = aligned(window, kind)
    if _pg(conn):
        raw = fine.agent_counts(fine.fetch_calls(conn, w), kind)
    else:
        raw = queries.agent_counts(conn, w, kind, categories="both")
    return agent_metrics(raw, kind, _hours(kind))


def job_periods(conn: Connection, kind: PeriodKind, window: Window) -> pd.DataFrame:
    """report_job_period rows for every whole bucket overlapping `window`."""
    w = aligned(window, kind)
    if _pg(conn):
        raw = fine.job_counts(fine.fetch_jobs(conn, w), kind)
    else:
        raw = queries.job_counts(conn, w, kind, categories="both")
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

    calls: fine.Fine
    jobs: fine.Fine

    def covers(self, window: Window) -> bool:
        w = self.calls.window
        return w.start <= window.start and window.end <= w.end


def periods(
    conn: Connection, windows: dict[PeriodKind, Window]
) -> tuple[list[Periods], Pass | None]:
    """Report rows of each kind's whole buckets; on PostgreSQL from a single pass."""
    spans = {kind: aligned(w, kind) for kind, w in windows.items()}
    if not spans:
        return [], None
    if not _pg(conn):
        out = [
            Periods(kind, w, agent_periods(conn, kind, w), job_periods(conn, kind, w))
            for kind, w in spans.items()
        ]
        return out, None
    cover = Window(min(w.start for w in spans.values()), max(w.end for w in spans.values()))
    done = Pass(fine.fetch_calls(conn, cover), fine.fetch_jobs(conn, cover))
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

    @property
    def calls(self) -> dict[str, int]:
        """Call counts over all agents: calls, completed, failed, cancelled, blocked, wins."""
        cols = ("calls", "completed", "failed", "cancelled", "blocked", "wins")
        return {c: int(self.agents[c].sum()) for c in cols}


def _whole_hours(window: Window) -> bool:
    return aligned(window, "hour") == window


def overview(conn: Connection, window: Window, done: Pass | None = None) -> Overview:
    """Window totals; from `done` when that pass covers the window in whole hours."""
    if _pg(conn):
        if done is not None and _whole_hours(window) and done.covers(window):
            calls, jobs_fine = done.calls.within(window), done.jobs.within(window)
        else:
            calls, jobs_fine = fine.fetch_calls(conn, window), fine.fetch_jobs(conn, window)
        agents = agent_metrics(fine.agent_counts(calls, None, split=False), "window", window.hours)
        jobs = job_metrics(fine.job_counts(jobs_fine, None, split=False), "window")
        return Overview(window, agents, job_totals(jobs), fine.latency_histogram(calls))
    agents = agent_metrics(
        queries.agent_counts(conn, window, None, categories="all"), "window", window.hours
    )
    jobs = job_metrics(queries.job_counts(conn, window, None, categories="all"), "window")
    return Overview(window, agents, job_totals(jobs), queries.latency_histogram(conn, window))
