"""matching at scale: indexed eligibility, a kept in-flight count, bounded explanations

Revision ID: 0008_matching
Revises: 0007_category_stats
Create Date: 2026-11-30

- agents.in_flight: the agent's ASSIGNED/WORKING calls, kept by triggers on
  job_distribution_agents (insert, status or agent change, delete) in the transaction that
  opens or closes a row, whichever code path does it (race, cancel, sweep, discard); planning
  and capacity checks read it instead of counting rows per plan. Backfilled here.
- GIN (jsonb_path_ops) indexes on agents.categories and agents.tags (PostgreSQL): the
  prefilter's containment tests (`@>`) use them. SQLite, the single-process default, filters
  the same rules with json_each and no index.
- job_distributions.exclusions: how many agents each rule excluded (the stored decisions
  keep only the chosen agents and the next few).

The open statuses are a frozen copy of domain.statuses.AGENT_OPEN: a migration must not
change meaning when the code changes later.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_matching"
down_revision: str | None = "0007_category_stats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
OPEN = "('ASSIGNED', 'WORKING')"
ROWS = "job_distribution_agents"

PG_FUNCTION = f"""
CREATE FUNCTION ad_agent_in_flight() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- ASSIGNED -> WORKING (open to open, same agent) moves no count and takes no agent lock:
    -- a race marks all its calls WORKING in one transaction, in no particular agent order.
    IF TG_OP = 'UPDATE' AND OLD.agent_id IS NOT DISTINCT FROM NEW.agent_id
            AND (OLD.status IN {OPEN}) = (NEW.status IN {OPEN}) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        IF OLD.agent_id IS NOT NULL AND OLD.status IN {OPEN} THEN
            UPDATE agents SET in_flight = in_flight - 1 WHERE id = OLD.agent_id;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.agent_id IS NOT NULL AND NEW.status IN {OPEN} THEN
            UPDATE agents SET in_flight = in_flight + 1 WHERE id = NEW.agent_id;
        END IF;
    END IF;
    RETURN NULL;
END $$;
"""
PG_TRIGGERS = [
    f"""CREATE TRIGGER ad_agent_in_flight_ins_del AFTER INSERT OR DELETE ON {ROWS}
        FOR EACH ROW EXECUTE FUNCTION ad_agent_in_flight()""",
    f"""CREATE TRIGGER ad_agent_in_flight_upd AFTER UPDATE OF status, agent_id ON {ROWS}
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                           OR OLD.agent_id IS DISTINCT FROM NEW.agent_id)
        EXECUTE FUNCTION ad_agent_in_flight()""",
]
# SQLite has no trigger functions: one trigger per side of the change.
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER ad_in_flight_insert AFTER INSERT ON {ROWS}
        WHEN NEW.agent_id IS NOT NULL AND NEW.status IN {OPEN}
        BEGIN UPDATE agents SET in_flight = in_flight + 1 WHERE id = NEW.agent_id; END""",
    f"""CREATE TRIGGER ad_in_flight_delete AFTER DELETE ON {ROWS}
        WHEN OLD.agent_id IS NOT NULL AND OLD.status IN {OPEN}
        BEGIN UPDATE agents SET in_flight = in_flight - 1 WHERE id = OLD.agent_id; END""",
    f"""CREATE TRIGGER ad_in_flight_update_old AFTER UPDATE OF status, agent_id ON {ROWS}
        WHEN OLD.agent_id IS NOT NULL AND OLD.status IN {OPEN}
            AND NOT (NEW.agent_id IS OLD.agent_id AND NEW.status IN {OPEN})
        BEGIN UPDATE agents SET in_flight = in_flight - 1 WHERE id = OLD.agent_id; END""",
    f"""CREATE TRIGGER ad_in_flight_update_new AFTER UPDATE OF status, agent_id ON {ROWS}
        WHEN NEW.agent_id IS NOT NULL AND NEW.status IN {OPEN}
            AND NOT (NEW.agent_id IS OLD.agent_id AND OLD.status IN {OPEN})
        BEGIN UPDATE agents SET in_flight = in_flight + 1 WHERE id = NEW.agent_id; END""",
]
SQLITE_NAMES = [
    "ad_in_flight_insert",
    "ad_in_flight_delete",
    "ad_in_flight_update_old",
    "ad_in_flight_update_new",
]


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("in_flight", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("job_distributions") as batch:
        batch.add_column(sa.Column("exclusions", JSON, nullable=True))
    op.execute(f"""
        UPDATE agents SET in_flight = (
            SELECT count(*) FROM {ROWS} r WHERE r.agent_id = agents.id AND r.status IN {OPEN}
        )
    """)
    if pg:
        for column in ("categories", "tags"):
            op.create_index(
                f"ix_agents_{column}_gin",
                "agents",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "jsonb_path_ops"},
            )
        op.execute(PG_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS ad_agent_in_flight_upd ON {ROWS}")
        op.execute(f"DROP TRIGGER IF EXISTS ad_agent_in_flight_ins_del ON {ROWS}")
        op.execute("DROP FUNCTION IF EXISTS ad_agent_in_flight()")
        op.drop_index("ix_agents_tags_gin", table_name="agents")
        op.drop_index("ix_agents_categories_gin", table_name="agents")
    else:
        for name in SQLITE_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("job_distributions") as batch:
        batch.drop_column("exclusions")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("in_flight")
