"""workflows: registered definitions, runs, step jobs linked to their parent, SKIPPED

Revision ID: 0006_workflows
Revises: 0003
Create Date: 2026-11-29

Hand-written; runs on PostgreSQL and SQLite (names go through op.f: env.py applies the naming
convention to plain ones). Step jobs are rows of `jobs` with a parent and a
step id; SKIPPED is a job status for steps only (a CHECK says so), and the PostgreSQL guard of
0003 learns the one move only steps make: OPEN -> FAILED (no agent could take the step). As in
0003, the move pairs are a frozen copy of domain.statuses at this revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from agent_dispatch.db.types import JSONDoc, UTCDateTime

revision: str = "0006_workflows"
down_revision: str | None = "0005_change_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = ("OPEN", "DISTRIBUTED", "IN_PROGRESS", "COMPLETED", "CANCELLED", "EXPIRED", "FAILED")
STATUSES = (*OLD_STATUSES, "SKIPPED")
JOB_MOVES = [
    ("OPEN", "DISTRIBUTED"),
    ("OPEN", "CANCELLED"),
    ("OPEN", "EXPIRED"),
    ("DISTRIBUTED", "IN_PROGRESS"),
    ("DISTRIBUTED", "FAILED"),
    ("DISTRIBUTED", "CANCELLED"),
    ("DISTRIBUTED", "EXPIRED"),
    ("IN_PROGRESS", "COMPLETED"),
    ("IN_PROGRESS", "FAILED"),
    ("IN_PROGRESS", "CANCELLED"),
    ("IN_PROGRESS", "EXPIRED"),
]
STEP_ONLY_MOVES = [("OPEN", "FAILED")]
TERMINAL = ("COMPLETED", "CANCELLED", "EXPIRED", "FAILED", "SKIPPED")


def _in(values: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _pairs(moves: list[tuple[str, str]]) -> str:
    return ", ".join(f"('{a}', '{b}')" for a, b in moves)


def _guard(moves_sql: str, terminal: Sequence[str]) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION ad_guard_job_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status IS DISTINCT FROM OLD.status AND NOT ({moves_sql}) THEN
                RAISE EXCEPTION 'illegal job transition % -> %', OLD.status, NEW.status
                    USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.status IN ({", ".join(f"'{s}'" for s in terminal)})
               AND NEW.lease_token IS NOT NULL THEN
                RAISE EXCEPTION 'a finished job (%) cannot hold a lease', NEW.status
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$;
    """


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("workflow", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("parent_job_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("step_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("step_try", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_jobs_parent_job_id_jobs"),
            "jobs",
            ["parent_job_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_jobs_parent_job_id"), ["parent_job_id"])
        batch.create_unique_constraint(
            op.f("uq_jobs_step_try"), ["parent_job_id", "step_id", "step_try"]
        )
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_jobs_status"), _in(STATUSES))
        batch.create_check_constraint(
            op.f("ck_jobs_skipped_step"), "status <> 'SKIPPED' OR parent_job_id IS NOT NULL"
        )
        batch.create_check_constraint(
            op.f("ck_jobs_step_named"), "(parent_job_id IS NULL) = (step_id IS NULL)"
        )
    op.create_table(
        "workflows",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", JSONDoc, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_workflows"),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("workflow", sa.String(length=100), nullable=False),
        sa.Column("definition", JSONDoc, nullable=False),
        sa.Column("starts", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_workflow_runs_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name="pk_workflow_runs"),
    )
    op.create_index("ix_workflow_runs_workflow", "workflow_runs", ["workflow"])
    if op.get_bind().dialect.name == "postgresql":
        moves = (
            f"(OLD.status, NEW.status) IN ({_pairs(JOB_MOVES)})"
            f" OR (NEW.parent_job_id IS NOT NULL"
            f" AND (OLD.status, NEW.status) IN ({_pairs(STEP_ONLY_MOVES)}))"
        )
        op.execute(_guard(moves, TERMINAL))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        moves = f"(OLD.status, NEW.status) IN ({_pairs(JOB_MOVES)})"
        op.execute(_guard(moves, TERMINAL[:-1]))
    op.drop_index("ix_workflow_runs_workflow", table_name="workflow_runs")
    op.drop_table("workflow_runs")
    op.drop_table("workflows")
    op.execute("DELETE FROM jobs WHERE parent_job_id IS NOT NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_step_named"), type_="check")
        batch.drop_constraint(op.f("ck_jobs_skipped_step"), type_="check")
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_jobs_status"), _in(OLD_STATUSES))
        batch.drop_constraint(op.f("uq_jobs_step_try"), type_="unique")
        batch.drop_index(op.f("ix_jobs_parent_job_id"))
        batch.drop_constraint(op.f("fk_jobs_parent_job_id_jobs"), type_="foreignkey")
        for column in ("step_try", "step_id", "parent_job_id", "workflow"):
            batch.drop_column(column)
