"""A small WebSocket client for the live feed: collect change messages up to an id."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import connect


class Feed:
    """One connection; `changes` holds the job/agent messages, `notes` hello and gap."""

    def __init__(self, url: str, bearer: str | None, **query: Any) -> None:
        params = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
        self.url = url + (f"?{params}" if params else "")
        self.headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        self.changes: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.received_at: dict[int, float] = {}  # change id -> wall clock when it arrived

    async def __aenter__(self) -> Feed:
        self.ws = await connect(self.url, additional_headers=self.headers)
        hello = json.loads(await self.ws.recv())
        assert hello["kind"] == "hello", hello
        self.notes.append(hello)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    @property
    def last_id(self) -> int:
        return int(self.changes[-1]["id"]) if self.changes else 0

    async def read(self, *, until_id: int | None = None, count: int | None = None,
                   timeout: float = 30.0) -> None:  # fmt: skip
        """Read until a change with id >= until_id arrived, or `count` more changes."""
        goal = len(self.changes) + count if count is not None else None
        deadline = time.monotonic() + timeout
        while True:
            if until_id is not None and self.last_id >= until_id:
                return
            if goal is not None and len(self.changes) >= goal:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"feed stalled at id {self.last_id} ({self.url})")
            message = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            if isinstance(message, list):  # a frame of changes
                for change in message:
                    assert change["kind"] in ("job", "agent"), change
                    self.changes.append(change)
                    self.received_at[change["id"]] = time.time()
            else:
                self.notes.append(message)
