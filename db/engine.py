"""Engine and session factory for PostgreSQL (psycopg 3) or the embedded SQLite default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key


def is_sqlite(url: str) -> bool:
    """The embedded SQLite database: its transactions run one at a time (`_begin_immediate`)."""
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> Engine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver would begin a transaction only at the first write, so a read-check-write
    # (capacity, leases) could see a stale count; we begin every transaction ourselves.
    dbapi_conn.isolation_level = None
    # WAL lets readers (CLI, analytics) work while a run writes; foreign keys are off by default.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_session_factory(
    engine: Engine, change_log_keep: int | None = None
) -> sessionmaker[Session]:
    # Each session carries how many change-log rows to keep (read when the log is pruned).
    info = {} if change_log_keep is None else {"change_log_keep": change_log_keep}
    return sessionmaker(engine, expire_on_commit=False, info=info)


def ping(engine: Engine) -> None:
    """Raise unless the database answers."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _begin_immediate(conn: Any) -> None:
    # Take SQLite's write lock when the transaction starts: transactions are serialised whole,
    # which is what FOR UPDATE gives on PostgreSQL (busy_timeout makes the others wait).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_on_conflict(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` in the dialect named, the kind that has ON CONFLICT (both
    dialects spell it alike: `on_conflict_do_nothing`, `on_conflict_do_update`, `excluded`)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def loaded_as_written(session: Session, model: type[Any], key: str, values: dict[str, Any]) -> None:
    """After a plain UPDATE of one row, an object of it this session has loaded shows what was
    written, as the ORM's own update keeps it (nothing marked changed, nothing read again)."""
    loaded = session.identity_map.get(identity_key(model, key))
    for name, value in values.items() if loaded is not None else ():
        set_committed_value(loaded, name, value)
