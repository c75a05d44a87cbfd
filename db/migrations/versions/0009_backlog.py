"""backlog: the agent pool's version, and the version a waiting job was found unservable at

Revision ID: 0009_backlog
Revises: 0008_matching
Create Date: 2026-11-30

Whether any agent could ever serve a job (capacity and circuits aside) depends only on the
agents' rows: who exists, active, protocol, healthy, categories, tags, skill level. Triggers
on `agents` bump `agent_pool.version` whenever one of those changes (statistics, circuits
and health probes that keep the verdict do not), so intake can recognise an OPEN job whose
recorded `unserved_version` is current and leave it alone without planning it again.

The triggers live in the database so that every writer bumps the version: the CLI, the API,
the health flow, a hand-written UPDATE. On SQLite a later migration that rebuilds `agents`
(batch_alter_table in "move and copy" mode) drops them and must create them again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_backlog"
down_revision: str | None = "0008_matching"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The agent columns an "unservable" verdict reads (domain/backlog.py); frozen here on purpose.
VERDICT_COLUMNS = ("active", "protocol", "healthy", "categories", "tags", "skill_level")
BUMP = "UPDATE agent_pool SET version = version + 1 WHERE id = 1"


def _changed(old: str, new: str, distinct: str) -> str:
    return " OR ".join(f"{old}.{c} {distinct} {new}.{c}" for c in VERDICT_COLUMNS)


def _postgresql() -> None:
    op.execute(f"""
        CREATE FUNCTION ad_bump_agent_pool() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {BUMP};
            RETURN NULL;
        END $$;
    """)
    op.execute("""
        CREATE TRIGGER ad_agent_pool_rows AFTER INSERT OR DELETE ON agents
        FOR EACH STATEMENT EXECUTE FUNCTION ad_bump_agent_pool();
    """)
    op.execute(f"""
        CREATE TRIGGER ad_agent_pool_verdict AFTER UPDATE OF {", ".join(VERDICT_COLUMNS)}
        ON agents FOR EACH ROW WHEN ({_changed("OLD", "NEW", "IS DISTINCT FROM")})
        EXECUTE FUNCTION ad_bump_agent_pool();
    """)


def _sqlite() -> None:
    for event in ("INSERT", "DELETE"):
        op.execute(f"""
            CREATE TRIGGER ad_agent_pool_{event.lower()} AFTER {event} ON agents
            BEGIN {BUMP}; END;
        """)
    op.execute(f"""
        CREATE TRIGGER ad_agent_pool_verdict AFTER UPDATE OF {", ".join(VERDICT_COLUMNS)}
        ON agents WHEN {_changed("OLD", "NEW", "IS NOT")}
        BEGIN {BUMP}; END;
    """)


def upgrade() -> None:
    op.create_table(
        "agent_pool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.CheckConstraint("id = 1", name=op.f("ck_agent_pool_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_pool")),
    )
    op.execute("INSERT INTO agent_pool (id, version) VALUES (1, 0)")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("unserved_version", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        _postgresql()
    else:
        _sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ad_agent_pool_verdict ON agents")
        op.execute("DROP TRIGGER ad_agent_pool_rows ON agents")
        op.execute("DROP FUNCTION ad_bump_agent_pool()")
    else:
        for name in ("insert", "delete", "verdict"):
            op.execute(f"DROP TRIGGER ad_agent_pool_{name}")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("unserved_version")
    op.drop_table("agent_pool")
