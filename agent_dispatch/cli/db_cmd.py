"""`agent-dispatch db upgrade`."""

from __future__ import annotations

import argparse

from sqlalchemy.exc import OperationalError

from agent_dispatch.cli.base import CLIError, runtime
from agent_dispatch.db.migrate import current_revision, upgrade


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("db", help="database schema")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    up = dbsub.add_parser("upgrade", help="apply migrations up to the newest schema")
    up.set_defaults(handler=cmd_upgrade)


def cmd_upgrade(args: argparse.Namespace) -> int:
    rt = runtime()
    try:
        upgrade(rt.engine)
        rev = current_revision(rt.engine)
    except OperationalError as exc:
        raise CLIError(f"cannot reach the database: {str(exc.orig).splitlines()[0]}") from None
    print(f"database at revision {rev} ({rt.engine.url.render_as_string(hide_password=True)})")
    return 0
