"""learned ranking: per-(agent, category) evidence, and the task's result strategy

Revision ID: 0007_category_stats
Revises: 0003
Create Date: 2026-11-29

agent_category_stats holds decayed evidence sums (successes, failures, censored losers and a
lognormal latency fit) that Thompson-sampling ranking and hedge delays read; jobs keep the
queue task's optional resultStrategy so a rescued job is decided the same way.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_category_stats"
down_revision: str | None = "0006_workflows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "agent_category_stats",
        sa.Column("agent_id", sa.String(36), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("successes", sa.Float(), nullable=False, server_default="0"),
        sa.Column("failures", sa.Float(), nullable=False, server_default="0"),
        sa.Column("censored", sa.Float(), nullable=False, server_default="0"),
        sa.Column("lat_n", sa.Float(), nullable=False, server_default="0"),
        sa.Column("log_sum", sa.Float(), nullable=False, server_default="0"),
        sa.Column("log_sq", sa.Float(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name="fk_agent_category_stats_agent_id_agents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", "category", name="pk_agent_category_stats"),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("result_strategy", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("result_strategy")
    op.drop_table("agent_category_stats")
