"""The analytics facts kept on the execution rows (migration 0010_report_facts), as read here.

Triggers copy onto each call its job's category, and onto each ended job what the reports
need of its distributions and calls; the aggregations then scan one table each instead of
joining calls -> distributions -> jobs. The columns are written only by the database (never
by the application), so they are not mapped on the ORM models: these lightweight tables name
them for the reporting reads alone.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, Integer, String, column, table
from sqlalchemy.sql.elements import ColumnElement

from agent_dispatch.db.types import JSONDoc, UTCDateTime

CALLS = table(
    "job_distribution_agents",
    column("finished_at", UTCDateTime),
    column("agent_id", String),
    column("agent_name", String),
    column("status", String),
    column("failure_kind", String),
    column("latency_ms", Float),
    column("won", Boolean),
    column("category", String),  # the job's category (trigger, on insert)
)

JOBS = table(
    "jobs",
    column("id", String),
    column("category", String),
    column("status", String),
    column("created_at", UTCDateTime),
    column("finished_at", UTCDateTime),
    column("parent_job_id", String),
    column("result_strategy", JSONDoc),
    # Kept for ended jobs (trigger): its distributions and their agent rows.
    column("dispatch_attempts", Integer),
    column("first_started_at", UTCDateTime),
    column("first_result_at", UTCDateTime),
    column("calls_started", Integer),
    column("calls_unstarted", Integer),
    column("call_spread_ms", Float),  # widest first-to-last call start of one attempt
)


def on_queue() -> ColumnElement[bool]:
    """Queue tasks only (not workflow steps), as db.models.on_queue."""
    return JOBS.c.parent_job_id.is_(None)
