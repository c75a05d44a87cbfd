"""The analytics flow on a real Prefect server: tables, feedback, artifacts, dashboard file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Agent
from agent_dispatch.db.reporting_models import ReportAgentPeriod, ReportJobPeriod
from agent_dispatch.domain.periods import floor
from agent_dispatch.flows.analytics import AnalyticsParams, AnalyticsSummary, analytics_flow
from tests.support.reporting_history import seed_history

pytestmark = [pytest.mark.flow, pytest.mark.postgres]


def test_analytics_flow_publishes_artifacts_and_dashboard(
    runtime: Runtime, prefect_harness: None, tmp_path: Path
) -> None:
    base = floor(dt.datetime.now(dt.UTC), "hour") - dt.timedelta(hours=3)
    with Session(runtime.engine) as session:
        seed_history(session, base)
    params = AnalyticsParams(since=base - dt.timedelta(hours=1), out_dir=str(tmp_path / "rep"))

    state = analytics_flow(params, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert isinstance(summary, AnalyticsSummary)

    assert summary.dashboard == str(tmp_path / "rep" / "index.html")
    page = Path(summary.dashboard).read_text(encoding="utf-8")
    assert 'id="chart-success-over-time"' in page and "gamma" in page
    assert summary.artifacts == ["agent-leaderboard", "analytics-summary"]
    assert summary.agents_refreshed == 3
    assert summary.stats["jobs"]["finished"] == 10  # j1..j10; j0 is older, j11 still running
    assert summary.stats["calls"]["calls"] == 22
    assert summary.rows_written["agent/hour"] == 18
    assert summary.incremental is False  # an explicit period: the watermarks stay unset
    with Session(runtime.engine) as session:
        hour_rows = session.scalar(select(func.count()).select_from(ReportAgentPeriod)
                                   .where(ReportAgentPeriod.period_kind == "hour"))  # fmt: skip
        job_rows = session.scalar(select(func.count()).select_from(ReportJobPeriod))
        reputations = {a.name: a.reputation for a in session.scalars(select(Agent))}
    assert hour_rows == 18
    assert job_rows == summary.rows_written["job/hour"] + summary.rows_written["job/day"]
    assert reputations["gamma"] < 0.5 < reputations["alpha"]  # all failures vs mostly wins

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["agent-leaderboard", "analytics-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == {"agent-leaderboard", "analytics-summary"}
    table = by_key["agent-leaderboard"]
    assert table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [r["agent"] for r in rows] == ["alpha", "beta", "delta", "gamma"]
    assert rows[0]["wins"] == 3 and rows[0]["success_rate"] == "60.0%"
    summary_md = by_key["analytics-summary"]
    assert summary_md.type == "markdown"
    assert "| jobs finished | 10 |" in str(summary_md.data)
    assert str(tmp_path / "rep" / "index.html") in str(summary_md.data)


def test_scheduled_runs_are_incremental(
    runtime: Runtime, prefect_harness: None, tmp_path: Path
) -> None:
    base = floor(dt.datetime.now(dt.UTC), "hour") - dt.timedelta(hours=3)
    with Session(runtime.engine) as session:
        seed_history(session, base)
    params = AnalyticsParams(out_dir=str(tmp_path / "rep"))  # what the schedule passes
    first = analytics_flow(params)
    # No watermark yet: the default 48 hours, so j0 (23 h ago) is in too.
    assert first.incremental and first.rows_written["agent/hour"] == 20
    assert first.source_rows == {"hour": 23 + 11, "day": 23 + 11}
    assert first.stats["jobs"]["finished"] == 11
    second = analytics_flow(params)
    # Nothing ended since: only the current hour and day are recomputed, from no new rows.
    assert second.incremental and second.source_rows["hour"] == 0
    assert second.rows_written["agent/hour"] == 0
    assert second.stats == first.stats | {"window": second.stats["window"]}
