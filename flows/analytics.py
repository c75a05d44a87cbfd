"""The analytics flow: period tables, ranking feedback, artifacts and the HTML dashboard."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_dispatch.db.types import utcnow
from agent_dispatch.flows.reports import publish_dashboard_link, run_name
from agent_dispatch.reporting.dashboard import granularity
from agent_dispatch.reporting.stats import glance, render_markdown
from agent_dispatch.reporting.window import KINDS, Window, aligned
from agent_dispatch.settings import DEFAULT_SQLITE_PATH
from agent_dispatch.tasks.analytics_tasks import (
    aggregate_agent_periods,
    aggregate_job_periods,
    compute_feedback,
    load_overview,
    publish_leaderboard,
    publish_summary,
    read_timelines,
    render_dashboard,
    write_dashboard,
    write_feedback,
    write_period_tables,
)

DEFAULT_REPORT_DIR = DEFAULT_SQLITE_PATH.parent / "report"


class AnalyticsParams(BaseModel):
    """Parameters of one analytics run (rendered as a form in the Prefect UI)."""

    model_config = ConfigDict(frozen=True)  # the flow's default instance is shared

    since: dt.datetime | None = Field(default=None, description="Window start; naive = UTC")
    until: dt.datetime | None = Field(default=None, description="Window end; default now")
    lookback_hours: float = Field(default=48, gt=0, le=24 * 400, description="When no since")
    out_dir: str | None = Field(
        default=None, description="Dashboard folder; default ~/.agent-dispatch/report"
    )
    half_life_days: float = Field(default=7, gt=0, le=365, description="Feedback decay")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    @model_validator(mode="after")
    def _ordered(self) -> AnalyticsParams:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    def window(self, now: dt.datetime) -> Window:
        until = self.until or now
        return Window(self.since or until - dt.timedelta(hours=self.lookback_hours), until)


class AnalyticsSummary(BaseModel):
    window_start: dt.datetime
    window_end: dt.datetime
    rows_written: dict[str, int] = Field(default_factory=dict)  # "agent/hour": n, ...
    agents_refreshed: int = 0
    dashboard: str | None = None
    artifacts: list[str] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)  # the `agent-dispatch stats` document


@flow(name="analytics", log_prints=True, flow_run_name=run_name("analytics"))
def analytics_flow(
    params: AnalyticsParams = AnalyticsParams(),  # noqa: B008 (frozen; prefills the UI's form)
) -> AnalyticsSummary:
    """Aggregate execution history per hour and day, refresh ranking, publish the results."""
    params = params or AnalyticsParams()
    logger = get_run_logger()
    now = utcnow()
    window = params.window(now)
    rows: dict[str, int] = {}
    for kind in KINDS:
        agents = aggregate_agent_periods(kind, window)
        jobs = aggregate_job_periods(kind, window)
        written = write_period_tables(kind, window, agents, jobs, now)
        rows[f"agent/{kind}"], rows[f"job/{kind}"] = written.agent_rows, written.job_rows
        logger.info(
            "%s buckets %s: %d agent rows, %d job rows",
            kind,
            written.window.label(),
            written.agent_rows,
            written.job_rows,
        )
    refreshed = write_feedback(compute_feedback(now, params.half_life_days))

    kind = granularity(window)
    shown = aligned(window, kind)  # whole buckets, so headline totals match the charts
    overview = load_overview(shown)
    doc = glance(overview)
    html = render_dashboard(overview, read_timelines(kind, shown), kind, now)
    path = write_dashboard(params.out_dir or str(DEFAULT_REPORT_DIR), html)
    notes = [
        f"Reporting rows replaced: {', '.join(f'{k} {v}' for k, v in rows.items())}.",
        f"Reputation and success rate refreshed for {refreshed} agents "
        f"(half-life {params.half_life_days:g} days).",
        f"Dashboard: `{path}`",
    ]
    keys = [
        publish_leaderboard(doc["agents"], shown),
        publish_summary(render_markdown(doc, notes)),
    ]
    logger.info("dashboard written to %s", path)
    publish_dashboard_link(path)
    return AnalyticsSummary(
        window_start=shown.start,
        window_end=shown.end,
        rows_written=rows,
        agents_refreshed=refreshed,
        dashboard=path,
        artifacts=keys,
        stats=doc,
    )
