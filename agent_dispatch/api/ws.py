"""`GET /api/ws`: every job and agent status change as JSON, live, with replay on reconnect.

Messages: `{"kind": "hello", "lastId"}` first, then frames that are JSON arrays of changes
`{"id", "kind": "job"|"agent", "jobId", "queueTaskId", "agent", "agentId", "status", "at",
"detail"}` in change-log order (so in order per job); `{"kind": "gap"}` when a replay starts
after rows that were already pruned. Query: `after=<id>` (replay what came after it),
`job=` (job or queue task id), `agent=` (name), `kind=job|agent`, `token=` (or an
Authorization bearer header).
A client too far behind is closed with code 4008; it reconnects with `after=` its last id.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from agent_dispatch.api.auth import given_token, refusal
from agent_dispatch.api.errors import body
from agent_dispatch.api.live import LAGGING, Filters, Hub

router = APIRouter(tags=["live"])
KINDS = ("job", "agent")


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(body(status, message), status))
    else:
        await websocket.close(code=1008, reason=message[:120])


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    query = websocket.query_params
    settings = websocket.app.state.rt.settings
    status = refusal(settings, "GET", given_token(websocket.headers, query))
    if status is not None:
        what = "a bearer token is required" if status == 401 else "the token is not valid"
        await _deny(websocket, status, what)
        return
    after_text, kind = query.get("after"), query.get("kind")
    if after_text is not None and not (after_text.isdigit() and len(after_text) < 19):
        await _deny(websocket, 422, "after must be a change id (a whole number >= 0)")
        return
    if kind is not None and kind not in KINDS:
        await _deny(websocket, 422, "kind must be job or agent")
        return
    filters = Filters(query.get("job") or None, query.get("agent") or None, kind)
    after = int(after_text) if after_text is not None else None
    hub: Hub = websocket.app.state.hub
    await websocket.accept()

    async def until_closed() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()  # clients have nothing to say; wait for close

    reader = asyncio.create_task(until_closed())
    streamer = asyncio.create_task(hub.stream(filters, after, websocket.send_text))
    try:
        done, _ = await asyncio.wait({reader, streamer}, return_when=asyncio.FIRST_COMPLETED)
        if streamer in done and streamer.exception() is None:
            # The client went away if this fails; nothing more to say to it either way.
            with contextlib.suppress(Exception):
                await websocket.close(code=LAGGING, reason="too far behind: reconnect with after=")
    finally:
        for task in (reader, streamer):
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(reader, streamer, return_exceptions=True)
