"""The bodies simulated agents answer with, including the endless and the huge ones."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from agent_dispatch.simulators.asgi import error
from agent_dispatch.simulators.behaviours import Behaviour


def completed(name: str, behaviour: Behaviour, job: dict[str, Any]) -> dict[str, Any]:
    result = behaviour.result
    if result is None:
        result = {"agent": name, "jobId": job["jobId"], "summary": f"{name} handled {job['title']}"}
    return {"status": "COMPLETED", "result": result, "score": behaviour.score}


def final_answer(kind: str, name: str, behaviour: Behaviour, job: dict[str, Any]) -> Response:
    """The synchronous answer of the kinds that answer at once (after their delay)."""
    if kind == "failing":
        return JSONResponse({"status": "FAILED", "error": behaviour.error})
    if kind == "error500":
        return error(500, behaviour.error)
    if kind == "non_json":
        return PlainTextResponse("oops")
    if kind == "wrong_shape":
        return JSONResponse(behaviour.body)
    return JSONResponse(completed(name, behaviour, job))


def streamed(chunks: AsyncIterator[bytes]) -> Response:
    # No Content-Length: the client cannot tell the size up front and must bound its read.
    return StreamingResponse(chunks, media_type="application/json")


async def drip(behaviour: Behaviour, stop: threading.Event) -> AsyncIterator[bytes]:
    """A valid-looking AgentResult, one byte per interval, that never ends."""
    head = b'{"status": "COMPLETED", "result": "'
    for i in itertools.count():
        if stop.is_set():
            return
        yield head[i : i + 1] if i < len(head) else b"."
        await asyncio.sleep(behaviour.interval)


async def huge(behaviour: Behaviour, stop: threading.Event) -> AsyncIterator[bytes]:
    """A valid AgentResult of `size` bytes, made chunk by chunk so it is never held in memory."""
    head, tail = b'{"status": "COMPLETED", "score": 0.5, "result": "', b'"}'
    yield head
    left = max(0, behaviour.size - len(head) - len(tail))
    chunk = b"x" * max(1, min(behaviour.chunk_size, left))
    while left > 0:
        if stop.is_set():
            return
        piece = chunk if left >= len(chunk) else chunk[:left]
        left -= len(piece)
        yield piece
        # Writes to a gone client return at once, so without this the loop would never let the
        # event loop see the disconnect and would push the whole body into a closed socket.
        await asyncio.sleep(0)
    yield tail
