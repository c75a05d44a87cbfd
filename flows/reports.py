"""What each flow run tells in the Prefect UI: a readable run name, a keyed artifact
(the Artifacts page lists every keyed artifact with its history, run after run), and the one
line a run that could not work ends Failed with.

Artifacts are a report, never a reason to fail a run: a failure to publish one is logged.
Nothing here may carry a token, a job payload or an agent answer (tests/e2e/test_secrets.py
reads every artifact back).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_table_artifact,
    create_link_artifact,
)
from prefect.runtime import flow_run
from sqlalchemy.exc import OperationalError

from agent_dispatch.clients.errors import QueueUnauthorized, QueueUnavailable
from agent_dispatch.services.dispatching import JobLine

DISPATCH_JOBS_KEY = "dispatch-jobs"
AGENT_HEALTH_KEY = "agent-health"
SWEEP_KEY = "sweep-summary"
DASHBOARD_KEY = "analytics-dashboard"
# What the database or the queue being out of reach raises out of a task: a run ends Failed
# naming it. Any other exception is a bug and keeps its traceback.
QUEUE_DOWN = (QueueUnavailable, QueueUnauthorized)


def database_line(exc: OperationalError) -> str:
    """`database: <the driver's first line>` (the rest of its message is connection detail)."""
    text = str(exc.orig or exc).strip()
    return "database: " + (text.splitlines()[0] if text else type(exc).__name__)


def queue_line(exc: object) -> str:
    return f"remote queue: {exc}"


log = logging.getLogger(__name__)


def run_name(
    kind: str, detail: Callable[[Mapping[str, Any]], str] | None = None
) -> Callable[[], str]:
    """A `flow_run_name` callable: `<kind> <UTC start> [detail]`, e.g.
    `dispatch 2025-06-01 14:03:00 UTC max 100 jobs`, instead of Prefect's random words."""

    def name() -> str:
        when = flow_run.scheduled_start_time or dt.datetime.now(dt.UTC)
        text = f"{kind} {when.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
        extra = detail(flow_run.parameters or {}) if detail else ""
        return f"{text} {extra}".strip()

    return name


def param(parameters: Mapping[str, Any], name: str, field: str) -> Any:
    """A field of a model parameter, whether Prefect hands over the model or its dict."""
    value = parameters.get(name)
    return value.get(field) if isinstance(value, dict) else getattr(value, field, None)


def dispatch_rows(jobs: Iterable[JobLine]) -> list[dict[str, str]]:
    return [
        {
            "job": j.queue_task_id,
            "outcome": j.outcome,
            "winner": j.winner or "",
            "latency": f"{j.winner_latency_ms:.0f} ms" if j.winner_latency_ms is not None else "",
            "detail": j.detail or "",
        }
        for j in jobs
    ]


async def publish_dispatch_jobs(jobs: list[JobLine], headline: str, total: int) -> None:
    """The run's jobs table: the lines the run kept (its last jobs to end, a bounded number)
    of `total` jobs; the headline counts them all."""
    shown = (
        f" (the last {len(jobs)} of {total} jobs to end are listed)" if len(jobs) < total else ""
    )
    await _publish(
        acreate_table_artifact(
            table=dispatch_rows(jobs)
            or [{"job": "", "outcome": "no jobs", "winner": "", "latency": "", "detail": ""}],
            key=DISPATCH_JOBS_KEY,
            description=headline + shown,
        ),
        DISPATCH_JOBS_KEY,
    )


async def publish_agent_health(agents: list[dict[str, object]], headline: str) -> None:
    rows = [
        {"agent": a["name"], "health": "ok" if a["healthy"] else "DOWN", "detail": a["detail"]}
        for a in agents
    ]
    await _publish(
        acreate_table_artifact(
            table=rows or [{"agent": "", "health": "no active agents", "detail": ""}],
            key=AGENT_HEALTH_KEY,
            description=headline,
        ),
        AGENT_HEALTH_KEY,
    )


async def publish_sweep(lines: list[dict[str, str]], headline: str) -> None:
    """Markdown: the headline, then one line per job the sweep rescued, ended or resent."""
    body = [f"# {headline}", ""]
    if lines:
        body += ["| job | action | detail |", "|---|---|---|"]
        body += [
            f"| {_cell(x['queueTaskId'])} | {_cell(x['action'])} | {_cell(x['detail'])} |"
            for x in lines
        ]
    else:
        body.append("No job needed rescuing, and every ending had reached the queue.")
    await _publish(
        acreate_markdown_artifact(markdown="\n".join(body), key=SWEEP_KEY, description=headline),
        SWEEP_KEY,
    )


def publish_dashboard_link(path: str) -> None:
    """A link to the dashboard file the analytics run wrote (open it on the worker's host)."""
    try:
        create_link_artifact(
            link=Path(path).resolve().as_uri(),
            link_text=f"Analytics dashboard ({Path(path).name})",
            key=DASHBOARD_KEY,
            description=f"Written to {path} on the machine that ran this flow",
        )
    except Exception as exc:
        log.warning("artifact %s not published: %s", DASHBOARD_KEY, type(exc).__name__)


def _cell(text: str) -> str:
    """Markdown table cell text: no pipe or line break can end the cell early."""
    return " ".join(text.replace("|", "\\|").split())


async def _publish(creating: Any, key: str) -> None:
    try:
        await creating
    except Exception as exc:
        log.warning("artifact %s not published: %s", key, type(exc).__name__)
