"""The analytics flow: period tables, ranking feedback, artifacts and the HTML dashboard."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.periods import Window, aligned
from agent_dispatch.flows.reports import publish_dashboard_link, run_name
from agent_dispatch.reporting.dashboard import granularity
from agent_dispatch.reporting.incremental import DEFAULT_LOOKBACK, SETTLE
from agent_dispatch.reporting.stats import glance, render_markdown
from agent_dispatch.settings import DEFAULT_SQLITE_PATH
from agent_dispatch.tasks.analytics_tasks import (
    aggregate_periods,
    compute_feedback,
    load_overview,
    plan_run,
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
    lookback_hours: float | None = Field(
        default=None,
        gt=0,
        le=24 * 400,
        description="Recompute the last N hours; with no since/until/lookback the run is "
        "incremental (only the buckets touched since the last run)",
    )
    settle_minutes: float = Field(
        default=SETTLE.total_seconds() / 60,
        ge=0,
        le=24 * 60,
        description="Incremental runs re-read this much before the watermark",
    )
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

    @property
    def incremental(self) -> bool:
        return self.since is None and self.until is None and self.lookback_hours is None

    def window(self, now: dt.datetime) -> Window:
        """The window shown (dashboard, totals); an explicit run also recomputes it."""
        until = self.until or now
        hours = self.lookback_hours
        back = DEFAULT_LOOKBACK if hours is None else dt.timedelta(hours=hours)
        return Window(self.since or until - back, until)


class AnalyticsSummary(BaseModel):
    window_start: dt.datetime
    window_end: dt.datetime
    incremental: bool = False
    recomputed: dict[str, str] = Field(default_factory=dict)  # kind -> buckets replaced
    rows_written: dict[str, int] = Field(default_factory=dict)  # "agent/hour": n, ...
    source_rows: dict[str, int] = Field(default_factory=dict)  # kind -> calls + jobs read
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
    plan = plan_run(None if params.incremental else window, now, params.settle_minutes)
    logger.info("recomputing %s", plan.describe())
    periods, done = aggregate_periods(plan)
    rows: dict[str, int] = {}
    source: dict[str, int] = {}
    for part in periods:
        written = write_period_tables(part, now, plan.incremental)
        kind = part.kind
        rows[f"agent/{kind}"], rows[f"job/{kind}"] = written.agent_rows, written.job_rows
        source[kind] = part.source_rows
        logger.info(
            "%s buckets %s: %d agent rows, %d job rows from %d calls and jobs",
            kind,
            written.window.label(),
            written.agent_rows,
            written.job_rows,
            part.source_rows,
        )
    refreshed = write_feedback(compute_feedback(now, params.half_life_days))

    kind = granularity(window)
    shown = aligned(window, kind)  # whole buckets, so headline totals match the charts
    overview = load_overview(shown, done)
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
        incremental=plan.incremental,
        recomputed={k: w.label() for k, w in plan.windows.items()},
        rows_written=rows,
        source_rows=source,
        agents_refreshed=refreshed,
        dashboard=path,
        artifacts=keys,
        stats=doc,
    )
