"""Waiting for new change-log rows: LISTEN on PostgreSQL, a timer on SQLite.

The waiter only says "look now"; readers always read the table after the last id they saw
(db/change_log.read_after), so a missed or merged notification costs nothing but latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import psycopg
from sqlalchemy import Engine

from agent_dispatch.db.change_log import CHANNEL

log = logging.getLogger(__name__)


class ChangeWaiter(Protocol):
    async def wait(self, at_most: float) -> None:
        """Return when new changes may be there, or after `at_most` seconds."""

    async def aclose(self) -> None: ...


class PollingWaiter:
    """SQLite has no notifications: look again every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    async def wait(self, at_most: float) -> None:
        await asyncio.sleep(min(at_most, self.interval))

    async def aclose(self) -> None:
        return None


class ListeningWaiter:
    """LISTEN on one autocommit connection; reconnects (and says "look now") when it drops."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.conn: psycopg.AsyncConnection[object] | None = None

    async def _connect(self) -> psycopg.AsyncConnection[object]:
        conn: psycopg.AsyncConnection[object] = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True
        )
        await conn.execute(f"LISTEN {CHANNEL}")
        return conn

    async def wait(self, at_most: float) -> None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = await self._connect()
                return  # a fresh LISTEN: anything may have happened while it was down
            # Run the generator to its end (stop_after): a `break` would leave it holding the
            # connection's lock until it is garbage-collected, delaying the next wait.
            async for _ in self.conn.notifies(timeout=at_most, stop_after=1):
                pass
        except psycopg.Error as exc:
            log.warning("change feed: LISTEN connection lost (%s); reconnecting", exc)
            await self.aclose()
            await asyncio.sleep(min(at_most, 1.0))

    async def aclose(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self.conn.close()
            self.conn = None


def waiter_for(engine: Engine, poll_seconds: float) -> ChangeWaiter:
    if engine.dialect.name == "postgresql":
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return ListeningWaiter(url)
    return PollingWaiter(poll_seconds)
