"""Reporting tables written by the analytics flow; read by the dashboard, BI tools and `stats`.

One row per period bucket (an hour or a UTC day) and per agent/category or per category.
Rows are replaced whole per bucket (delete then insert in one transaction), so re-running
a period never counts anything twice. `category = '*'` rows are the all-categories rollup
of the same bucket: sum either the '*' rows or the per-category rows, never both.
docs/reporting.md describes every column.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agent_dispatch.db.models import Base, Job
from agent_dispatch.db.types import UTCDateTime, utcnow

ALL_CATEGORIES = "*"
PERIOD_KINDS = ("hour", "day")
_KIND_CHECK = "period_kind IN ('hour', 'day')"


class ReportAgentPeriod(Base):
    """One agent's calls that ended in one period bucket (per category and '*')."""

    __tablename__ = "report_agent_period"
    __table_args__ = (
        UniqueConstraint(
            "period_kind", "period_start", "agent_name", "category", name="uq_report_agent_period"
        ),
        CheckConstraint(_KIND_CHECK, name="period_kind"),
        Index("ix_report_agent_period_kind_start", "period_kind", "period_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period_kind: Mapped[str] = mapped_column(String(4))
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    agent_id: Mapped[str | None] = mapped_column(String(36))  # NULL once the agent is removed
    agent_name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(100))
    # Counts of agent calls that ended (finished_at) in the bucket, by outcome.
    calls: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)  # timeouts + http + connection + invalid + agent
    timeouts: Mapped[int] = mapped_column(Integer)
    http_errors: Mapped[int] = mapped_column(Integer)
    connection_errors: Mapped[int] = mapped_column(Integer)
    invalid_answers: Mapped[int] = mapped_column(Integer)
    agent_failures: Mapped[int] = mapped_column(Integer)
    blocked: Mapped[int] = mapped_column(Integer)  # refused before calling: not the agent's fault
    cancelled: Mapped[int] = mapped_column(Integer)  # lost the race / job stopped: not a failure
    wins: Mapped[int] = mapped_column(Integer)
    success_rate: Mapped[float | None] = mapped_column(Float)  # completed / (completed + failed)
    win_rate: Mapped[float | None] = mapped_column(Float)  # wins / (calls - blocked)
    latency_samples: Mapped[int] = mapped_column(Integer)  # completed calls with a latency
    latency_mean_ms: Mapped[float | None] = mapped_column(Float)
    latency_p50_ms: Mapped[float | None] = mapped_column(Float)
    latency_p90_ms: Mapped[float | None] = mapped_column(Float)
    latency_p99_ms: Mapped[float | None] = mapped_column(Float)
    throughput_per_hour: Mapped[float] = mapped_column(Float)  # calls / hours in the bucket
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportJobPeriod(Base):
    """Jobs that reached a terminal status in one period bucket (per category and '*')."""

    __tablename__ = "report_job_period"
    __table_args__ = (
        UniqueConstraint("period_kind", "period_start", "category", name="uq_report_job_period"),
        CheckConstraint(_KIND_CHECK, name="period_kind"),
        Index("ix_report_job_period_kind_start", "period_kind", "period_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period_kind: Mapped[str] = mapped_column(String(4))
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    category: Mapped[str] = mapped_column(String(100))
    jobs: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    expired: Mapped[int] = mapped_column(Integer)
    cancelled: Mapped[int] = mapped_column(Integer)
    dispatch_attempts: Mapped[int] = mapped_column(Integer)  # job_distributions rows
    completion_rate: Mapped[float] = mapped_column(Float)
    failure_rate: Mapped[float] = mapped_column(Float)
    expiry_rate: Mapped[float] = mapped_column(Float)
    cancel_rate: Mapped[float] = mapped_column(Float)
    ttfr_samples: Mapped[int] = mapped_column(Integer)  # jobs with a first result
    ttfr_mean_ms: Mapped[float | None] = mapped_column(Float)
    ttfr_p50_ms: Mapped[float | None] = mapped_column(Float)
    ttfr_p90_ms: Mapped[float | None] = mapped_column(Float)
    e2e_mean_ms: Mapped[float | None] = mapped_column(Float)
    e2e_p50_ms: Mapped[float | None] = mapped_column(Float)
    e2e_p90_ms: Mapped[float | None] = mapped_column(Float)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportWatermark(Base):
    """Where the incremental analytics runs stand, one row per period kind.

    Every call and job that ended before `watermark` is counted in the table of that kind
    (up to the settle margin the next run re-reads). An incremental run recomputes only the
    buckets from the one holding `watermark - settle` to now, and moves the watermark in the
    same transaction as it replaces those buckets. Runs over an explicit period replace their
    buckets and leave the watermark alone (they may extend `covered_since`).

    `covered_since`: the buckets from there up to the watermark are complete, because every
    run since started at or before the watermark of the one before. Ranking feedback reads
    the hour rows instead of the execution rows once they cover its whole horizon.
    """

    __tablename__ = "report_watermark"
    __table_args__ = (CheckConstraint(_KIND_CHECK, name="period_kind"),)

    period_kind: Mapped[str] = mapped_column(String(4), primary_key=True)
    watermark: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    covered_since: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The buckets the last incremental run replaced, and what it wrote and read.
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    buckets: Mapped[int] = mapped_column(Integer)
    agent_rows: Mapped[int] = mapped_column(Integer)
    job_rows: Mapped[int] = mapped_column(Integer)
    source_rows: Mapped[int] = mapped_column(Integer)  # calls + jobs aggregated
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# Job buckets are chosen by finished_at; without an index every analytics run scans all jobs.
Index("ix_jobs_finished_at", Job.finished_at)
