"""The analytics reads over one connection, for the pandas side (agent_dispatch.reporting).

PostgreSQL reads a window once as fine groups (db.reporting_fine) that reporting rolls up;
other databases (SQLite) run the plain grouping queries (db.reporting_queries). The reader
says which (`one_pass`) and keeps the connection on this side of the layer line.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection

from agent_dispatch.db import (
    reporting_fine,
    reporting_policy,
    reporting_queries,
    reporting_store,
    workflow_stats,
)
from agent_dispatch.db.reporting_fine import Fine
from agent_dispatch.db.reporting_queries import Categories
from agent_dispatch.domain.periods import PeriodKind, Window


class ReportingReader:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def one_pass(self) -> bool:
        """PostgreSQL: one pass yields fine groups; elsewhere the plain queries run."""
        return self._conn.dialect.name == "postgresql"

    def fine_calls(self, window: Window) -> Fine:
        return reporting_fine.fetch_calls(self._conn, window)

    def fine_jobs(self, window: Window) -> Fine:
        return reporting_fine.fetch_jobs(self._conn, window)

    def agent_counts(
        self, window: Window, kind: PeriodKind | None, categories: Categories
    ) -> pd.DataFrame:
        return reporting_queries.agent_counts(self._conn, window, kind, categories=categories)

    def job_counts(
        self, window: Window, kind: PeriodKind | None, categories: Categories
    ) -> pd.DataFrame:
        return reporting_queries.job_counts(self._conn, window, kind, categories=categories)

    def latency_histogram(self, window: Window) -> pd.DataFrame:
        return reporting_queries.latency_histogram(self._conn, window)

    def agent_periods(self, kind: PeriodKind, window: Window) -> pd.DataFrame:
        """The all-categories rows of report_agent_period (written by an earlier step)."""
        return reporting_store.read_agent_periods(self._conn, kind, window)

    def job_periods(self, kind: PeriodKind, window: Window) -> pd.DataFrame:
        return reporting_store.read_job_periods(self._conn, kind, window)

    def workflow_steps(self, window: Window) -> pd.DataFrame:
        """Step tries that finished in the window (db.workflow_stats.step_rows)."""
        return workflow_stats.step_rows(self._conn, window)

    def workflow_runs(self, window: Window) -> pd.DataFrame:
        """Workflow runs whose parent finished in the window."""
        return workflow_stats.run_rows(self._conn, window)

    def dispatch_rows(self, window: Window, late_ms: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Job counts per (category, own strategy) and exploratory picks (db.reporting_policy)."""
        return (
            reporting_policy.dispatch_counts(self._conn, window, late_ms),
            reporting_policy.exploration_picks(self._conn, window),
        )
