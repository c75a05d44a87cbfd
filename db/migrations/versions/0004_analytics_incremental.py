"""analytics watermark: where incremental analytics runs stand, one row per period kind

Revision ID: 0004_analytics
Revises: 0003
Create Date: 2026-11-29

Hand-written; runs on PostgreSQL and SQLite. See db/reporting_models.py (ReportWatermark)
and docs/reporting.md ("Incremental runs").
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0004_analytics"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    def when(name: str) -> sa.Column[Any]:
        return sa.Column(name, db.types.UTCDateTime(timezone=True), nullable=False)

    op.create_table(
        "report_watermark",
        sa.Column("period_kind", sa.String(length=4), nullable=False),
        when("watermark"),
        when("covered_since"),
        when("window_start"),
        when("window_end"),
        *[
            sa.Column(n, sa.Integer(), nullable=False)
            for n in ("buckets", "agent_rows", "job_rows", "source_rows")
        ],
        when("updated_at"),
        sa.CheckConstraint(
            "period_kind IN ('hour', 'day')", name=op.f("ck_report_watermark_period_kind")
        ),
        sa.PrimaryKeyConstraint("period_kind", name=op.f("pk_report_watermark")),
    )


def downgrade() -> None:
    op.drop_table("report_watermark")
