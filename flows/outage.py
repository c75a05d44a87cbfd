"""One line for a run that could not work: the flows end Failed with it, not a traceback."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from agent_dispatch.clients.errors import QueueUnauthorized, QueueUnavailable

# What the database or the queue being out of reach raises out of a task: a run ends Failed
# naming it. Any other exception is a bug and keeps its traceback.
QUEUE_DOWN = (QueueUnavailable, QueueUnauthorized)


def database_line(exc: OperationalError) -> str:
    """`database: <the driver's first line>` (the rest of its message is connection detail)."""
    text = str(exc.orig or exc).strip()
    return "database: " + (text.splitlines()[0] if text else type(exc).__name__)


def queue_line(exc: object) -> str:
    return f"remote queue: {exc}"
