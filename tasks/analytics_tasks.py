"""Analytics tasks: each one reads, computes or writes one thing; the work is in
agent_dispatch.services.stats (SQL in db/, pandas in reporting/)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.db.reporting_store import Written
from agent_dispatch.domain.periods import PeriodKind, Window
from agent_dispatch.reporting.compute import Overview, Pass, Periods
from agent_dispatch.reporting.feedback import AgentFeedback
from agent_dispatch.reporting.format import ms, pct
from agent_dispatch.reporting.incremental import Plan
from agent_dispatch.services import stats

# Every task keeps its result in memory (persist_result=False): frames of job and agent
# history must not reach a result store where a worker sets PREFECT_RESULTS_PERSIST_BY_DEFAULT.
LEADERBOARD_KEY = "agent-leaderboard"
SUMMARY_KEY = "analytics-summary"


@task(name="plan-analytics-run", cache_policy=NO_CACHE, persist_result=False)
def plan_run(window: Window | None, now: dt.datetime, settle_minutes: float) -> Plan:
    """The buckets to recompute: an explicit period, or what changed since the watermarks."""
    return stats.plan_run(get_runtime(), window, now, dt.timedelta(minutes=settle_minutes))


@task(name="aggregate-periods", cache_policy=NO_CACHE, persist_result=False)
def aggregate_periods(plan: Plan) -> tuple[list[Periods], Pass | None]:
    """Per agent/category and per category, per hour and day bucket (one pass on PostgreSQL)."""
    return stats.aggregate_periods(get_runtime(), plan)


@task(
    name="write-period-tables",
    cache_policy=NO_CACHE,
    persist_result=False,
    task_run_name="write-period-tables {periods.kind}",
)
def write_period_tables(periods: Periods, at: dt.datetime, incremental_run: bool) -> Written:
    """Replace the buckets' rows in report_agent_period and report_job_period."""
    return stats.write_periods(get_runtime(), periods, at, incremental_run)


@task(name="compute-feedback", cache_policy=NO_CACHE, persist_result=False)
def compute_feedback(now: dt.datetime, half_life_days: float) -> list[AgentFeedback]:
    """Time-decayed success rate and reputation per agent."""
    return stats.feedback_scores(get_runtime(), now, dt.timedelta(days=half_life_days))


@task(name="write-feedback", cache_policy=NO_CACHE, persist_result=False)
def write_feedback(scores: list[AgentFeedback]) -> int:
    """Store them on the agents, where ranking reads them."""
    return stats.write_feedback(get_runtime(), scores)


@task(name="window-overview", cache_policy=NO_CACHE, persist_result=False)
def load_overview(window: Window, done: Pass | None = None) -> Overview:
    """Totals over the whole window: leaderboard, headline, latency histogram, workflows."""
    return stats.window_overview(get_runtime(), window, done)


@task(name="read-timelines", cache_policy=NO_CACHE, persist_result=False)
def read_timelines(kind: PeriodKind, window: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The all-categories rows just written, for the dashboard's time charts."""
    return stats.timelines(get_runtime(), kind, window)


@task(name="publish-leaderboard", cache_policy=NO_CACHE, persist_result=False)
def publish_leaderboard(rows: list[dict[str, Any]], window: Window) -> str:
    """Table artifact: one row per agent, best first."""
    table = [
        {
            "rank": r["rank"],
            "agent": r["agent"],
            "calls": r["calls"],
            "wins": r["wins"],
            "win_rate": pct(r["win_rate"]),
            "success_rate": pct(r["success_rate"]),
            "failed": r["failed"],
            "timeouts": r["timeouts"],
            "http_errors": r["http_errors"],
            "invalid_answers": r["invalid_answers"],
            "cancelled_losers": r["cancelled"],
            "p50": ms(r["latency_p50_ms"]),
            "p90": ms(r["latency_p90_ms"]),
            "p99": ms(r["latency_p99_ms"]),
        }
        for r in rows
    ]
    create_table_artifact(
        table=table, key=LEADERBOARD_KEY, description=f"Agent leaderboard, {window.label()}"
    )
    return LEADERBOARD_KEY


@task(name="publish-summary", cache_policy=NO_CACHE, persist_result=False)
def publish_summary(markdown: str) -> str:
    """Markdown artifact: headline numbers, failures by kind, what was written where."""
    create_markdown_artifact(markdown=markdown, key=SUMMARY_KEY, description="Analytics summary")
    return SUMMARY_KEY


@task(name="render-dashboard", cache_policy=NO_CACHE, persist_result=False)
def render_dashboard(
    overview: Overview,
    timelines: tuple[pd.DataFrame, pd.DataFrame],
    kind: PeriodKind,
    at: dt.datetime,
) -> str:
    return stats.render_dashboard(overview, timelines, kind, at)


@task(name="write-dashboard", cache_policy=NO_CACHE, persist_result=False)
def write_dashboard(out_dir: str, html: str) -> str:
    return str(stats.write_dashboard(Path(out_dir), html))
