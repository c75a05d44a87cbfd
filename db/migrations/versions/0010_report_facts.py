"""analytics facts on the execution rows: one table scan per aggregation

Revision ID: 0010_report_facts
Revises: 0009_backlog
Create Date: 2026-11-30

The analytics one pass used to join calls -> distributions -> jobs (11-17 s at 10M calls) and
group distributions per job (8-10 s) on every run. What those joins fetched is now copied onto
the rows, by triggers, so any writer (repositories, sweeps, test fixtures) keeps it right:

- job_distribution_agents.category: the category of the call's job, set when the row is
  inserted (a job's category never changes after intake).
- jobs.dispatch_attempts, first_started_at, first_result_at, calls_started, calls_unstarted,
  call_spread_ms: per ended job, its distributions (count, earliest start, earliest first
  result), its agent rows (started, reserved but never started) and the widest gap between
  the first and the last call start of one attempt (hedge detection). Computed from the rows
  when the job reaches a terminal status (reads only, by index), and again when one of its
  distributions or agent rows changes after that. While the job is open the columns are not
  maintained (NULL or stale) and nothing reads them; a job's row is therefore never locked
  from a call's or an attempt's write while the job is open, so no new lock order appears on
  the dispatch path.

The terminal statuses are a frozen copy of domain.statuses.JOB_TERMINAL. The backfill is
one UPDATE per table (a full rewrite of job_distribution_agents: minutes at 10M rows).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_report_facts"
down_revision: str | None = "0009_backlog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENDED = "('COMPLETED', 'CANCELLED', 'EXPIRED', 'FAILED', 'SKIPPED')"
FACTS = (
    "dispatch_attempts",
    "first_started_at",
    "first_result_at",
    "calls_started",
    "calls_unstarted",
    "call_spread_ms",
)
COLUMNS = ", ".join(FACTS)


def _spread_ms(dialect: str, later: str, earlier: str) -> str:
    if dialect == "postgresql":
        return f"extract(epoch FROM {later} - {earlier}) * 1000.0"

    # SQLite: whole milliseconds since 1970, exact (as db.reporting_sql.millis_between).
    def ms(col: str) -> str:
        return (
            f"(CAST(strftime('%s', {col}) AS INTEGER) * 1000 + CAST(round((strftime('%f', {col})"
            f" - CAST(strftime('%S', {col}) AS INTEGER)) * 1000) AS INTEGER))"
        )

    return f"CAST({ms(later)} - {ms(earlier)} AS REAL)"


def _facts(dialect: str, job: str) -> list[str]:
    """One scalar subquery per fact of job `job` (an SQL expression), in FACTS order."""
    calls = (
        "FROM job_distribution_agents a JOIN job_distributions d ON d.id = a.distribution_id "
        f"WHERE d.job_id = {job}"
    )
    spread = _spread_ms(dialect, "max(a.started_at)", "min(a.started_at)")
    return [
        f"(SELECT count(*) FROM job_distributions d WHERE d.job_id = {job})",
        f"(SELECT min(d.started_at) FROM job_distributions d WHERE d.job_id = {job})",
        f"(SELECT min(d.first_result_at) FROM job_distributions d WHERE d.job_id = {job})",
        f"(SELECT count(a.started_at) {calls})",
        f"(SELECT count(*) - count(a.started_at) {calls})",
        f"(SELECT max(s) FROM (SELECT {spread} AS s {calls} GROUP BY a.distribution_id) x)",
    ]


def _refresh(dialect: str, job: str) -> str:
    """Recompute the facts of job `job` when it has ended (a no-op, no lock, otherwise)."""
    sets = ", ".join(f"{c} = {e}" for c, e in zip(FACTS, _facts(dialect, job), strict=True))
    return f"UPDATE jobs SET {sets} WHERE id = {job} AND status IN {ENDED}"


JOB_OF_CALL = "(SELECT d.job_id FROM job_distributions d WHERE d.id = {row}.distribution_id)"


def _postgresql() -> None:
    facts = _facts("postgresql", "NEW.id")
    assign = "\n".join(f"NEW.{c} := {e};" for c, e in zip(FACTS, facts, strict=True))
    op.execute(f"""
        CREATE FUNCTION ad_job_facts() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {assign}
            RETURN NEW;
        END $$;
    """)
    op.execute(f"""
        CREATE TRIGGER ad_job_facts BEFORE INSERT OR UPDATE OF status ON jobs
        FOR EACH ROW WHEN (NEW.status IN {ENDED}) EXECUTE FUNCTION ad_job_facts();
    """)
    old_job, new_job = "OLD.job_id", "NEW.job_id"
    op.execute(f"""
        CREATE FUNCTION ad_distribution_facts() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN {_refresh("postgresql", old_job)}; END IF;
            IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.job_id <> OLD.job_id) THEN
                {_refresh("postgresql", new_job)};
            END IF;
            RETURN NULL;
        END $$;
    """)
    op.execute("""
        CREATE TRIGGER ad_distribution_facts AFTER INSERT OR DELETE
        OR UPDATE OF job_id, started_at, first_result_at ON job_distributions
        FOR EACH ROW EXECUTE FUNCTION ad_distribution_facts();
    """)
    op.execute("""
        CREATE FUNCTION ad_call_category() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.category := (SELECT j.category FROM job_distributions d
                             JOIN jobs j ON j.id = d.job_id WHERE d.id = NEW.distribution_id);
            RETURN NEW;
        END $$;
    """)
    op.execute("""
        CREATE TRIGGER ad_call_category BEFORE INSERT ON job_distribution_agents
        FOR EACH ROW WHEN (NEW.category IS NULL) EXECUTE FUNCTION ad_call_category();
    """)
    # The job is looked up once per row; its facts are refreshed only if it has ended.
    op.execute(f"""
        CREATE FUNCTION ad_call_facts() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            job text;
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                job := (SELECT d.job_id FROM job_distributions d WHERE d.id = OLD.distribution_id);
                {_refresh("postgresql", "job")};
            END IF;
            IF TG_OP <> 'DELETE' THEN
                job := (SELECT d.job_id FROM job_distributions d WHERE d.id = NEW.distribution_id);
                {_refresh("postgresql", "job")};
            END IF;
            RETURN NULL;
        END $$;
    """)
    op.execute("""
        CREATE TRIGGER ad_call_facts AFTER INSERT OR DELETE
        OR UPDATE OF distribution_id, started_at ON job_distribution_agents
        FOR EACH ROW EXECUTE FUNCTION ad_call_facts();
    """)


def _sqlite() -> None:
    op.execute(f"""
        CREATE TRIGGER ad_job_facts_insert AFTER INSERT ON jobs WHEN NEW.status IN {ENDED}
        BEGIN {_refresh("sqlite", "NEW.id")}; END
    """)
    op.execute(f"""
        CREATE TRIGGER ad_job_facts_status AFTER UPDATE OF status ON jobs
        WHEN NEW.status IN {ENDED}
        BEGIN {_refresh("sqlite", "NEW.id")}; END
    """)
    for event, rows in (("INSERT", ("NEW",)), ("DELETE", ("OLD",))):
        body = " ".join(f"{_refresh('sqlite', f'{r}.job_id')};" for r in rows)
        op.execute(f"""
            CREATE TRIGGER ad_distribution_facts_{event.lower()} AFTER {event}
            ON job_distributions BEGIN {body} END
        """)
    op.execute(f"""
        CREATE TRIGGER ad_distribution_facts_update
        AFTER UPDATE OF job_id, started_at, first_result_at ON job_distributions
        BEGIN {_refresh("sqlite", "OLD.job_id")}; {_refresh("sqlite", "NEW.job_id")}; END
    """)
    op.execute("""
        CREATE TRIGGER ad_call_category AFTER INSERT ON job_distribution_agents
        WHEN NEW.category IS NULL
        BEGIN
            UPDATE job_distribution_agents SET category = (
                SELECT j.category FROM job_distributions d JOIN jobs j ON j.id = d.job_id
                WHERE d.id = NEW.distribution_id) WHERE id = NEW.id;
        END
    """)
    old_call, new_call = JOB_OF_CALL.format(row="OLD"), JOB_OF_CALL.format(row="NEW")
    op.execute(f"""
        CREATE TRIGGER ad_call_facts_insert AFTER INSERT ON job_distribution_agents
        BEGIN {_refresh("sqlite", new_call)}; END
    """)
    op.execute(f"""
        CREATE TRIGGER ad_call_facts_delete AFTER DELETE ON job_distribution_agents
        BEGIN {_refresh("sqlite", old_call)}; END
    """)
    op.execute(f"""
        CREATE TRIGGER ad_call_facts_update
        AFTER UPDATE OF distribution_id, started_at ON job_distribution_agents
        BEGIN {_refresh("sqlite", old_call)}; {_refresh("sqlite", new_call)}; END
    """)


SQLITE_NAMES = [
    "ad_job_facts_insert",
    "ad_job_facts_status",
    "ad_distribution_facts_insert",
    "ad_distribution_facts_delete",
    "ad_distribution_facts_update",
    "ad_call_category",
    "ad_call_facts_insert",
    "ad_call_facts_delete",
    "ad_call_facts_update",
]


def _backfill(pg: bool) -> None:
    if pg:
        # Set-based: per-row subqueries would cost an index probe per row and column.
        op.execute("""
            UPDATE job_distribution_agents a SET category = j.category
            FROM job_distributions d JOIN jobs j ON j.id = d.job_id
            WHERE d.id = a.distribution_id
        """)
        spread = _spread_ms("postgresql", "max(a.started_at)", "min(a.started_at)")
        op.execute(f"""
            UPDATE jobs j SET dispatch_attempts = coalesce(f.attempts, 0),
                first_started_at = f.first_start, first_result_at = f.first_result,
                calls_started = coalesce(c.started, 0), calls_unstarted = coalesce(c.unstarted, 0),
                call_spread_ms = c.spread
            FROM jobs j2
            LEFT JOIN (SELECT job_id, count(*) AS attempts, min(started_at) AS first_start,
                              min(first_result_at) AS first_result
                       FROM job_distributions GROUP BY job_id) f ON f.job_id = j2.id
            LEFT JOIN (SELECT job_id, sum(started) AS started, sum(unstarted) AS unstarted,
                              max(spread) AS spread
                       FROM (SELECT d.job_id, count(a.started_at) AS started,
                                    count(*) - count(a.started_at) AS unstarted,
                                    {spread} AS spread
                             FROM job_distribution_agents a
                             JOIN job_distributions d ON d.id = a.distribution_id
                             GROUP BY d.job_id, a.distribution_id) per_attempt
                       GROUP BY job_id) c ON c.job_id = j2.id
            WHERE j2.id = j.id AND j.status IN {ENDED}
        """)
        return
    op.execute("""
        UPDATE job_distribution_agents SET category = (
            SELECT j.category FROM job_distributions d JOIN jobs j ON j.id = d.job_id
            WHERE d.id = job_distribution_agents.distribution_id)
    """)
    op.execute(_refresh("sqlite", "jobs.id"))


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    # Plain ALTER TABLE, never batch mode: SQLite's batch mode recreates the table, which
    # drops its triggers (0008's) and, with foreign keys on, cascades into the child rows.
    op.add_column("job_distribution_agents", sa.Column("category", sa.String(100)))
    op.add_column("jobs", sa.Column("dispatch_attempts", sa.Integer()))
    op.add_column("jobs", sa.Column("first_started_at", sa.DateTime(timezone=True)))
    op.add_column("jobs", sa.Column("first_result_at", sa.DateTime(timezone=True)))
    op.add_column("jobs", sa.Column("calls_started", sa.Integer()))
    op.add_column("jobs", sa.Column("calls_unstarted", sa.Integer()))
    op.add_column("jobs", sa.Column("call_spread_ms", sa.Float()))
    _backfill(pg)
    if pg:
        _postgresql()
    else:
        _sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ad_call_facts ON job_distribution_agents")
        op.execute("DROP TRIGGER IF EXISTS ad_call_category ON job_distribution_agents")
        op.execute("DROP TRIGGER IF EXISTS ad_distribution_facts ON job_distributions")
        op.execute("DROP TRIGGER IF EXISTS ad_job_facts ON jobs")
        for fn in ("ad_call_facts", "ad_call_category", "ad_distribution_facts",
                   "ad_job_facts"):  # fmt: skip
            op.execute(f"DROP FUNCTION IF EXISTS {fn}()")
    else:
        for name in SQLITE_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not batch mode (see upgrade).
    for column in reversed(FACTS):
        op.drop_column("jobs", column)
    op.drop_column("job_distribution_agents", "category")
