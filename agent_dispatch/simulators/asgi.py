"""Small ASGI and HTTP pieces shared by the queue and the agent farm."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RequestHook = Callable[[Scope], None]
ResponseHook = Callable[[Scope, int | None], None]


def observed(
    app: ASGIApp,
    *,
    on_start: RequestHook | None = None,
    on_response: ResponseHook | None = None,
    on_end: ResponseHook | None = None,
) -> ASGIApp:
    """Wrap `app` so hooks see every HTTP request begin, be answered, and end.

    on_response runs before the status line goes out, so the client cannot see an answer
    that the hook has not seen; on_end runs after the body is fully streamed and gets the
    status sent, or None when there was none.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status: int | None = None

        async def noting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if on_response is not None:
                    on_response(scope, status)
            await send(message)

        if on_start is not None:
            on_start(scope)
        try:
            await app(scope, receive, noting_send)
        except ClientDisconnect:
            # The client left before its request body had arrived (a dispatcher stopping a
            # losing call mid-send): there is nobody to answer, and it is not a server error.
            pass
        finally:
            if on_end is not None:
                on_end(scope, status)

    return wrapped


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone; call only after the request body was read."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def read_json(request: Request) -> Any:
    """The request body as JSON, or None when it is empty or not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def bearer_ok(headers: Headers, token: str | None) -> bool:
    return token is None or headers.get("authorization") == f"Bearer {token}"


def retry_after(seconds: float | None) -> dict[str, str]:
    # The contracts speak of seconds and allow fractions (0.1), so no rounding to integers.
    return {} if seconds is None else {"Retry-After": f"{seconds:g}"}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
