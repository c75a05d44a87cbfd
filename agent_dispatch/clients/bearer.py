"""Bearer tokens asked for at request time, for tokens kept outside the process environment.

The bootstrap reads them from Prefect Secret blocks; the clients only see a `TokenSource`,
so nothing below the bootstrap knows where a token lives (or that Prefect exists).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

import httpx

from agent_dispatch.clients.errors import ClientError, TokenUnavailable


class TokenSource(Protocol):
    """Where a token comes from; `fresh=True` asks past any cache, after the token was
    refused (an operator may have just rotated it)."""

    async def __call__(self, *, fresh: bool = False) -> str: ...


class BearerFrom(httpx.Auth):
    """Bearer auth whose token is asked for per request. A 401 asks once more, fresh, and
    retries only when the token changed, so a rotation is picked up at once and a wrong
    token is not sent twice.

    A token that cannot be read raises `error` (the client's own error type) with one line
    naming where it is kept; the value never appears in a message.
    """

    requires_response_body = False

    def __init__(self, source: TokenSource, error: type[ClientError]) -> None:
        self._source = source
        self._error = error

    def __repr__(self) -> str:
        return "BearerFrom(<token source>)"

    async def _token(self, fresh: bool) -> str:
        try:
            return await self._source(fresh=fresh)
        except TokenUnavailable as exc:
            raise self._error(f"token unavailable: {exc}") from None

    async def async_auth_flow(  # type: ignore[override]
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._token(fresh=False)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            again = await self._token(fresh=True)
            if again != token:
                request.headers["Authorization"] = f"Bearer {again}"
                yield request
