"""transition guards: PostgreSQL triggers that reject illegal job and agent status moves

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

The application checks every move against domain.statuses and makes conditional updates;
these triggers make the database refuse an illegal move from any client too (a raw UPDATE,
a buggy script, a future code path). The pairs are a frozen copy of domain.statuses: a
migration must not change meaning when the code changes later.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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
AGENT_MOVES = [
    ("ASSIGNED", "WORKING"),
    ("ASSIGNED", "FAILED"),
    ("ASSIGNED", "CANCELLED"),
    ("ASSIGNED", "TIMEOUT"),
    ("WORKING", "COMPLETED"),
    ("WORKING", "FAILED"),
    ("WORKING", "CANCELLED"),
    ("WORKING", "TIMEOUT"),
]
JOB_TERMINAL = ("COMPLETED", "CANCELLED", "EXPIRED", "FAILED")


def _pairs(moves: list[tuple[str, str]]) -> str:
    return ", ".join(f"('{a}', '{b}')" for a, b in moves)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite is the single-process default; the application checks still apply
    terminal = ", ".join(f"'{s}'" for s in JOB_TERMINAL)
    op.execute(f"""
        CREATE FUNCTION ad_guard_job_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status IS DISTINCT FROM OLD.status
               AND (OLD.status, NEW.status) NOT IN ({_pairs(JOB_MOVES)}) THEN
                RAISE EXCEPTION 'illegal job transition % -> %', OLD.status, NEW.status
                    USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.status IN ({terminal}) AND NEW.lease_token IS NOT NULL THEN
                RAISE EXCEPTION 'a finished job (%) cannot hold a lease', NEW.status
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$;
    """)
    op.execute("""
        CREATE TRIGGER ad_guard_job_update BEFORE UPDATE ON jobs
        FOR EACH ROW EXECUTE FUNCTION ad_guard_job_update();
    """)
    op.execute(f"""
        CREATE FUNCTION ad_guard_agent_row_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status IS DISTINCT FROM OLD.status
               AND (OLD.status, NEW.status) NOT IN ({_pairs(AGENT_MOVES)}) THEN
                RAISE EXCEPTION 'illegal agent transition % -> %', OLD.status, NEW.status
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$;
    """)
    op.execute("""
        CREATE TRIGGER ad_guard_agent_row_update BEFORE UPDATE ON job_distribution_agents
        FOR EACH ROW EXECUTE FUNCTION ad_guard_agent_row_update();
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS ad_guard_agent_row_update ON job_distribution_agents")
    op.execute("DROP FUNCTION IF EXISTS ad_guard_agent_row_update()")
    op.execute("DROP TRIGGER IF EXISTS ad_guard_job_update ON jobs")
    op.execute("DROP FUNCTION IF EXISTS ad_guard_job_update()")
