"""Tokens kept in Prefect Secret blocks, read at run time with Prefect's async API.

A worker then needs no secret in its environment, and an operator rotates a token in the UI:
a value is reused for SECRET_CACHE_SECONDS at most, and read again at once when the queue
refuses it (see `fresh`). Nothing here logs or formats a value; messages name the block.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from agent_dispatch.clients.bearer import TokenSource
from agent_dispatch.clients.errors import TokenUnavailable, one_line

Loader = Callable[[str], Awaitable[str]]


async def load_secret_block(name: str) -> str:
    """The text a Secret block holds, from the Prefect API this process reports to."""
    from prefect.blocks.system import Secret

    try:
        block: Any = await Secret.aload(name)
    except ValueError:  # Prefect's way of saying "no block document by that name"
        raise TokenUnavailable(f"secret block {name!r} not found on the Prefect server") from None
    except Exception as exc:  # unreachable API, refused key: the type says enough, and
        # a message from below might quote what was sent
        raise TokenUnavailable(
            f"secret block {name!r} could not be read ({type(exc).__name__})"
        ) from None
    # `Secret.get()` would turn a token made of digits into a number: read the text as stored.
    value = block.value.get_secret_value()
    if not isinstance(value, str) or not value:
        raise TokenUnavailable(f"secret block {name!r} does not hold a text token")
    return value


class SecretTokens:
    """Secret block values by block name, each reused for `ttl` seconds."""

    def __init__(self, ttl: float, load: Loader = load_secret_block) -> None:
        self._ttl = ttl
        self._load = load
        self._values: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"SecretTokens(blocks={sorted(self._values)!r})"  # names only, never values

    async def get(self, name: str, *, fresh: bool = False) -> str:
        """The block's value; `fresh` skips the cache (the old value was just refused)."""
        if not name:
            raise TokenUnavailable("no secret block named")
        cached = self._values.get(name)
        if cached is not None and not fresh and time.monotonic() - cached[1] < self._ttl:
            return cached[0]
        try:
            value = await self._load(name)
        except TokenUnavailable:
            raise
        except Exception as exc:
            why = one_line(f"secret block {name!r} could not be read ({type(exc).__name__})")
            raise TokenUnavailable(why) from None
        self._values[name] = (value, time.monotonic())
        return value

    def source(self, name: str) -> TokenSource:
        """A token source for one block, as the queue client takes it."""

        async def token(*, fresh: bool = False) -> str:
            return await self.get(name, fresh=fresh)

        return token
