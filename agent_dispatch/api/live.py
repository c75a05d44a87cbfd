"""Live status: one listener reads new change-log rows and fans them out to WebSockets.

The listener wakes on NOTIFY (PostgreSQL) or a short timer (SQLite) and always reads the
table after the last id it saw, so the table, not the notification, decides what is sent.
A client that reconnects with `?after=<id>` is first replayed the rows it missed from the
table, then joins the live stream with no gap and no repeat (see `stream`). Changes go out as
JSON arrays (one or more changes per frame); `hello` and `gap` notes as single objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.change_feed import ChangeWaiter, waiter_for
from agent_dispatch.db.change_log import Change, id_range, read_after

log = logging.getLogger("agent_dispatch.api.live")
BATCH = 1000  # change-log rows read at once
FRAME = 200  # changes sent in one WebSocket frame at most
WAKE_AT_LEAST_EVERY = 2.0  # seconds: a lost notification costs at most this much delay
CLIENT_BACKLOG = 10_000  # messages; a client further behind is closed and replays on return
LAGGING = 4008  # close code: too far behind, reconnect with ?after=<last id received>


def frame(texts: list[str]) -> str:
    """Changes that are ready together go in one frame, a JSON array, oldest first: under
    load a client gets fewer, larger frames instead of falling behind one frame at a time."""
    return "[" + ",".join(texts) + "]"


class Filters:
    def __init__(self, job: str | None, agent: str | None, kind: str | None) -> None:
        self.job, self.agent, self.kind = job, agent, kind

    def wants(self, c: Change) -> bool:
        return (
            (self.job is None or self.job in (c.job_id, c.queue_task_id))
            and (self.agent is None or self.agent == c.agent)
            and (self.kind is None or self.kind == c.kind)
        )


class Subscriber:
    def __init__(self, filters: Filters) -> None:
        self.filters = filters
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(CLIENT_BACKLOG)
        self.lagging = False

    def offer(self, change_id: int, text: str) -> None:
        if self.lagging:
            return
        try:
            self.queue.put_nowait((change_id, text))
        except asyncio.QueueFull:
            self.lagging = True  # what it has is contiguous; it replays the rest on return


class Hub:
    """The one listener of this process; WebSocket handlers subscribe to it."""

    def __init__(self, rt: Runtime, waiter: ChangeWaiter | None = None) -> None:
        self.rt = rt
        self.waiter = waiter or waiter_for(rt.engine, rt.settings.change_log_poll_seconds)
        self.last_id = 0  # every change up to here has been offered to every subscriber
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.last_id = (await asyncio.to_thread(self._range))[1]
        self._task = asyncio.create_task(self._run(), name="change-log-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.waiter.aclose()

    def _range(self) -> tuple[int, int]:
        with self.rt.uow() as uow:
            return id_range(uow.session)

    def read(self, after: int, until: int | None, filters: Filters | None) -> list[Change]:
        f = filters or Filters(None, None, None)
        with self.rt.uow() as uow:
            return list(
                read_after(
                    uow.session, after, BATCH, until=until, job=f.job, agent=f.agent, kind=f.kind
                )
            )

    async def _run(self) -> None:
        while True:
            try:
                await self.waiter.wait(WAKE_AT_LEAST_EVERY)
                await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("change feed: reading the change log failed; retrying")
                await asyncio.sleep(1.0)

    async def _drain(self) -> None:
        while True:
            changes = await asyncio.to_thread(self.read, self.last_id, None, None)
            for c in changes:
                text = json.dumps(c.as_json())
                for sub in self.subscribers:
                    if sub.filters.wants(c):
                        sub.offer(c.id, text)
            if changes:
                self.last_id = changes[-1].id
            if len(changes) < BATCH:
                return

    async def stream(self, filters: Filters, after: int | None, send: Any) -> Subscriber:
        """Subscribe, replay (after, joined] from the table, then send live changes forever.

        Subscribing and reading `last_id` happen with no await between them, so every change
        above `joined` reaches the queue and every one at or below it is in the table.
        """
        sub = Subscriber(filters)
        self.subscribers.add(sub)
        joined = self.last_id
        try:
            sent = joined if after is None else after
            await send(json.dumps({"kind": "hello", "lastId": joined}))
            if after is not None:
                oldest = (await asyncio.to_thread(self._range))[0]
                if oldest > after + 1:
                    await send(json.dumps({"kind": "gap", "after": after, "oldest": oldest}))
                while sent < joined:
                    page = await asyncio.to_thread(self.read, sent, joined, filters)
                    for i in range(0, len(page), FRAME):
                        await send(frame([json.dumps(c.as_json()) for c in page[i : i + FRAME]]))
                    sent = page[-1].id if len(page) == BATCH else joined
            while True:
                if sub.lagging and sub.queue.empty():
                    return sub
                pending = [await sub.queue.get()]
                while len(pending) < FRAME and not sub.queue.empty():
                    pending.append(sub.queue.get_nowait())
                texts = [text for change_id, text in pending if change_id > sent]
                if texts:
                    await send(frame(texts))
                    sent = pending[-1][0]
        finally:
            self.subscribers.discard(sub)
