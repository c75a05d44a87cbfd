"""Every error is a JSON body `{"error": code, "message": text[, "fields": [...]]}`, never a
traceback: bad input is 422 naming each field, unknown ids 404, the unexpected 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("agent_dispatch.api")

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 422: "invalid", 500: "internal",
         503: "unavailable"}  # fmt: skip
_WHERE = {"body", "query", "path", "header"}


def body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": CODES.get(status, "error"), "message": message, **extra}


def problem(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> HTTPException:
    """An HTTPException with our body; `field` names the input at fault (422)."""
    fields = [{"field": field, "message": message}] if field else None
    return HTTPException(status, detail={"message": message, "fields": fields}, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if str(p) not in _WHERE]
    return ".".join(parts) or "body"


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if isinstance(detail, dict):
        extra = {"fields": detail["fields"]} if detail.get("fields") else {}
        content = body(exc.status_code, str(detail.get("message")), **extra)
    else:
        content = body(exc.status_code, str(detail))
    return JSONResponse(content, exc.status_code, headers=getattr(exc, "headers", None))


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
        for e in exc.errors()
    ]
    names = ", ".join(sorted({f["field"] for f in fields}))
    return JSONResponse(body(422, f"invalid {names}", fields=fields), 422)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server log; the client gets one line and no internals.
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(body(500, f"internal error ({type(exc).__name__})"), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _unexpected)
