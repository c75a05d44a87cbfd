"""Glue between queries and metrics: what one analytics step computes for one window."""

from __future__ import annotations

import dataclasses

import pandas as pd
from sqlalchemy import Connection

from agent_dispatch.reporting import queries
from agent_dispatch.reporting.aggregate import agent_metrics, job_metrics, job_totals
from agent_dispatch.reporting.window import STEP, PeriodKind, Window, aligned


def agent_periods(conn: Connection, kind: PeriodKind, window: Window) -> pd.DataFrame:
    """report_agent_period rows for every whole bucket overlapping `window`."""
    w = aligned(window, kind)
    raw = queries.agent_counts(conn, w, kind, categories="both")
    return agent_metrics(raw, kind, STEP[kind].total_seconds() / 3600)


def job_periods(conn: Connection, kind: PeriodKind, window: Window) -> pd.DataFrame:
    """report_job_period rows for every whole bucket overlapping `window`."""
    w = aligned(window, kind)
    raw = queries.job_counts(conn, w, kind, categories="both")
    return job_metrics(raw, kind)


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


def overview(conn: Connection, window: Window) -> Overview:
    agents = agent_metrics(
        queries.agent_counts(conn, window, None, categories="all"), "window", window.hours
    )
    jobs = job_metrics(queries.job_counts(conn, window, None, categories="all"), "window")
    return Overview(window, agents, job_totals(jobs), queries.latency_histogram(conn, window))
