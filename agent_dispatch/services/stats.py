"""Statistics: the analytics run's steps, `agent-dispatch stats` and the workflow figures.

Each step reads or writes through the unit of work (db.reporting_*: every SQL statement) and
computes with agent_dispatch.reporting (pandas, no I/O). Unlike the lifecycle services these
are plain synchronous functions: the work is blocking reads and CPU-bound pandas, and their
callers are synchronous (the analytics flow's tasks, the CLI); the HTTP API runs them in a
worker thread. They need only a unit of work, so any `Deps` serves.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from agent_dispatch.db import reporting_feedback, reporting_store, workflow_stats
from agent_dispatch.db.reporting_reader import ReportingReader
from agent_dispatch.db.reporting_store import Mark, Written
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.model import JobSpec, ResultStrategy
from agent_dispatch.domain.periods import PeriodKind, Window
from agent_dispatch.reporting import compute, dashboard, feedback, incremental, workflows
from agent_dispatch.reporting.compute import Overview, Pass, Periods
from agent_dispatch.reporting.feedback import AgentFeedback
from agent_dispatch.reporting.incremental import Plan
from agent_dispatch.reporting.policy import Rules
from agent_dispatch.reporting.stats import glance
from agent_dispatch.reporting.workflows import WorkflowFigures
from agent_dispatch.services.dispatch_rules import rules_for
from agent_dispatch.settings import Settings

# `stats` without --since: everything; nothing in this system predates the epoch.
ALL_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Transactions(Protocol):
    """What these services need of `Deps`: a unit of work per transaction."""

    def uow(self) -> UnitOfWork: ...


@contextlib.contextmanager
def _reading(deps: Transactions) -> Iterator[ReportingReader]:
    with deps.uow() as uow:  # rolled back at the end: nothing is written
        yield ReportingReader(uow.session.connection())


def plan_run(
    deps: Transactions, window: Window | None, now: dt.datetime, settle: dt.timedelta
) -> Plan:
    """The buckets to recompute: an explicit period, or what changed since the watermarks."""
    if window is not None:
        return incremental.explicit(window)
    with deps.uow() as uow:
        marks = reporting_store.read_watermarks(uow.session.connection())
    return incremental.incremental(marks, now, settle=settle)


def aggregate_periods(deps: Transactions, plan: Plan) -> tuple[list[Periods], Pass | None]:
    """Per agent/category and per category, per hour and day bucket (one pass on PostgreSQL)."""
    with _reading(deps) as reader:
        return compute.periods(reader, plan.windows)


def write_periods(
    deps: Transactions, periods: Periods, at: dt.datetime, incremental_run: bool
) -> Written:
    """Replace the buckets' rows; an incremental run moves its watermark in the same commit."""
    mark = Mark(at, periods.source_rows) if incremental_run else None
    with deps.uow() as uow:
        conn = uow.session.connection()
        p = periods
        written = reporting_store.replace_periods(
            conn, p.kind, p.window, p.agents, p.jobs, at, mark
        )
        uow.commit()
    return written


def feedback_scores(
    deps: Transactions, now: dt.datetime, half_life: dt.timedelta
) -> list[AgentFeedback]:
    """Time-decayed success rate and reputation of every agent with results in the horizon."""
    with deps.uow() as uow:
        since = feedback.horizon(now, half_life)
        frame = reporting_feedback.hourly_results(uow.session.connection(), since, now)
    return feedback.scores(frame, now, half_life)


def write_feedback(deps: Transactions, scores: list[AgentFeedback]) -> int:
    """Store them on the agents, where ranking reads them; how many agents changed."""
    rows = [(f.agent_id, f.reputation, f.success_rate) for f in scores]
    with deps.uow() as uow:
        changed = reporting_feedback.write_scores(uow.session.connection(), rows)
        uow.commit()
    return changed


def dispatch_rules(s: Settings) -> Rules:
    """A job's policy and strategy as dispatch resolves them now (neither is stored per job:
    only the task's own resultStrategy is), the way `jobs show` re-resolves its strategy."""

    def resolve(category: str, own: dict[str, Any] | None) -> tuple[str, str]:
        spec = JobSpec("", "", category, result_strategy=ResultStrategy.from_dict(own))
        rules = rules_for(s, spec)
        return rules.rule.policy.value, rules.strategy.kind.value

    return resolve


def window_overview(deps: Transactions, window: Window, done: Pass | None = None) -> Overview:
    """Totals over the whole window: leaderboard, headline, histogram, workflows, dispatch."""
    # A bare unit of work (the analytics benchmark) has no settings: the defaults decide.
    settings = getattr(deps, "settings", None)
    if not isinstance(settings, Settings):
        settings = Settings.model_construct()
    with _reading(deps) as reader:
        return compute.overview(reader, window, done, dispatch_rules(settings))


def timelines(
    deps: Transactions, kind: PeriodKind, window: Window
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The all-categories rows of the reporting tables, for the dashboard's time charts."""
    with _reading(deps) as reader:
        return reader.agent_periods(kind, window), reader.job_periods(kind, window)


def stats_document(
    deps: Transactions, since: dt.datetime | None, now: dt.datetime
) -> dict[str, Any]:
    """What `agent-dispatch stats --json` prints and /api/stats serves (start None: all time)."""
    doc = glance(window_overview(deps, Window(since or ALL_TIME, now)))
    if since is None:
        doc["window"]["start"] = None
    return doc


def workflow_figures(deps: Transactions, window: Window | None = None) -> WorkflowFigures:
    """Per-step and whole-run figures of workflows (`workflows stats`: every run so far)."""
    with deps.uow() as uow:
        conn = uow.session.connection()
        steps, runs = workflow_stats.step_rows(conn, window), workflow_stats.run_rows(conn, window)
    return workflows.figures(steps, runs)


def render_dashboard(
    overview: Overview,
    timelines: tuple[pd.DataFrame, pd.DataFrame],
    kind: PeriodKind,
    at: dt.datetime,
) -> str:
    """The dashboard page for the window of `overview` (timelines: `timelines()`)."""
    return dashboard.render(overview, timelines[0], timelines[1], kind, at)


def write_dashboard(out_dir: Path, html: str) -> Path:
    """index.html in `out_dir`, replaced whole (readers never see half a page)."""
    return dashboard.write(out_dir, html)
