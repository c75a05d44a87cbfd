"""change log: every job and agent status change, for the live feed and its replays

Revision ID: 0005_change_log
Revises: 0003
Create Date: 2026-11-29

Rows are written by the repositories in the same transaction as the status write
(db/change_log.py); on PostgreSQL that transaction also sends NOTIFY agent_dispatch_changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from agent_dispatch.db.types import JSONDoc, UTCDateTime

revision: str = "0005_change_log"
down_revision: str | None = "0004_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("queue_task_id", sa.String(length=128), nullable=False),
        sa.Column("agent_id", sa.String(length=36), nullable=True),
        sa.Column("agent_name", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("detail", JSONDoc, nullable=False),
        sa.CheckConstraint("kind IN ('job', 'agent')", name=op.f("ck_change_log_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log")),
    )


def downgrade() -> None:
    op.drop_table("change_log")
