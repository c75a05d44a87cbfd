"""Bearer-token access: API_TOKEN for every request, unless API_PUBLIC_READ opens the GETs.

Tokens are compared in constant time and never logged: the uvicorn loggers get a filter that
blanks `token=` in the request lines they print (WebSocket clients may pass it that way).
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from fastapi import Request
from starlette.datastructures import Headers, QueryParams

from agent_dispatch.api.errors import problem
from agent_dispatch.settings import Settings

READS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)


def given_token(headers: Headers, query: QueryParams) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return query.get("token") or None


def refusal(settings: Settings, method: str, token: str | None) -> int | None:
    """None when the request may go on; else 401 (no token) or 403 (a wrong one)."""
    expected = settings.api_token.get_secret_value()
    if not expected or (method in READS and settings.api_public_read):
        return None
    if token is None:
        return 401
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return 403
    return None


def require_access(request: Request) -> None:
    """FastAPI dependency on every /api route."""
    settings: Settings = request.app.state.rt.settings
    status = refusal(settings, request.method, given_token(request.headers, request.query_params))
    if status == 401:
        raise problem(
            401,
            "a bearer token is required (Authorization: Bearer <API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if status == 403:
        raise problem(403, "the token is not valid")


class RedactTokens(logging.Filter):
    """Blank `token=...` in log records (uvicorn prints request paths with their query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args: Any = record.args
            if isinstance(args, tuple):
                record.args = tuple(_redact(a) for a in args)
        record.msg = _redact(record.msg)
        return True


def _redact(value: Any) -> Any:
    return _TOKEN_IN_TEXT.sub(r"\1***", value) if isinstance(value, str) else value


class DenialNoise(logging.Filter):
    """uvicorn's websockets-sansio logs "ASGI callable returned without completing handshake"
    at ERROR after every WebSocket denial response although the client got its 401/403
    (upstream Kludex/uvicorn PR #3138). /api/ws always accepts or denies, so that line only
    ever follows a denial here; it is dropped so log alerts do not fire on a wrong token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def redact_server_logs() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        for kind in (RedactTokens, DenialNoise):
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())
