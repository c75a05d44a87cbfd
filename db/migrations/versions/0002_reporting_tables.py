"""reporting tables: per-period agent and job metrics written by the analytics flow

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Hand-written; runs on PostgreSQL and SQLite. Columns are documented in docs/reporting.md.
Also indexes jobs.finished_at, which the job aggregation filters on.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from agent_dispatch.db.types import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_CHECK = "period_kind IN ('hour', 'day')"


def _when() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("period_kind", sa.String(length=4), nullable=False),
        sa.Column("period_start", UTCDateTime(timezone=True), nullable=False),
    ]


def _count(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer(), nullable=False)


def _real(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.Float(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "report_agent_period",
        *_when(),
        sa.Column("agent_id", sa.String(length=36), nullable=True),
        sa.Column("agent_name", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        *[
            _count(n)
            for n in (
                "calls",
                "completed",
                "failed",
                "timeouts",
                "http_errors",
                "connection_errors",
                "invalid_answers",
                "agent_failures",
                "blocked",
                "cancelled",
                "wins",
            )
        ],
        _real("success_rate"),
        _real("win_rate"),
        _count("latency_samples"),
        *[_real(f"latency_{n}_ms") for n in ("mean", "p50", "p90", "p99")],
        _real("throughput_per_hour", nullable=False),
        sa.Column("computed_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(KIND_CHECK, name=op.f("ck_report_agent_period_period_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_agent_period")),
        sa.UniqueConstraint(
            "period_kind", "period_start", "agent_name", "category", name="uq_report_agent_period"
        ),
    )
    op.create_index(
        "ix_report_agent_period_kind_start",
        "report_agent_period",
        ["period_kind", "period_start"],
    )
    op.create_table(
        "report_job_period",
        *_when(),
        sa.Column("category", sa.String(length=100), nullable=False),
        *[
            _count(n)
            for n in ("jobs", "completed", "failed", "expired", "cancelled", "dispatch_attempts")
        ],
        *[
            _real(n, nullable=False)
            for n in ("completion_rate", "failure_rate", "expiry_rate", "cancel_rate")
        ],
        _count("ttfr_samples"),
        *[_real(f"ttfr_{n}_ms") for n in ("mean", "p50", "p90")],
        *[_real(f"e2e_{n}_ms") for n in ("mean", "p50", "p90")],
        sa.Column("computed_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(KIND_CHECK, name=op.f("ck_report_job_period_period_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_job_period")),
        sa.UniqueConstraint("period_kind", "period_start", "category", name="uq_report_job_period"),
    )
    op.create_index(
        "ix_report_job_period_kind_start", "report_job_period", ["period_kind", "period_start"]
    )
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
    op.drop_index("ix_report_job_period_kind_start", table_name="report_job_period")
    op.drop_table("report_job_period")
    op.drop_index("ix_report_agent_period_kind_start", table_name="report_agent_period")
    op.drop_table("report_agent_period")
