"""Tokens read at request time: the queue client asks its token source per request, asks
again (fresh) after a 401, and turns an unreadable token into a one-line QueueError; the
bootstrap's Secret-block cache reuses a value for its TTL only."""

from __future__ import annotations

import httpx
import pytest

from agent_dispatch.bootstrap.secrets import SecretTokens
from agent_dispatch.clients import QueueError, QueueUnauthorized, RemoteQueueClient, RetryPolicy
from agent_dispatch.clients.errors import TokenUnavailable

BASE = "http://queue.test"
PAGE = {"tasks": [], "nextCursor": None}


class Rotating:
    """A token source whose value an operator changes; counts fresh asks."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.cached = value
        self.fresh_asks = 0

    async def __call__(self, *, fresh: bool = False) -> str:
        if fresh:
            self.fresh_asks += 1
            self.cached = self.value
        return self.cached


def queue_accepting(token: str, seen: list[str]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {token}":
            return httpx.Response(401, json={"error": "bad token"})
        return httpx.Response(200, json=PAGE)

    return httpx.MockTransport(answer)


async def test_a_token_rotated_at_its_source_is_used_after_one_refusal() -> None:
    source, seen = Rotating("old-token"), []
    async with RemoteQueueClient(
        BASE, source, transport=queue_accepting("new-token", seen), retry=RetryPolicy(0)
    ) as client:
        source.value = "new-token"  # rotated in the UI; the cache still holds the old one
        await client.list_tasks()
        await client.list_tasks()

    assert seen == ["Bearer old-token", "Bearer new-token", "Bearer new-token"]
    assert source.fresh_asks == 1


async def test_a_refused_token_that_did_not_change_is_not_sent_twice() -> None:
    source, seen = Rotating("wrong"), []
    async with RemoteQueueClient(
        BASE, source, transport=queue_accepting("right", seen), retry=RetryPolicy(0)
    ) as client:
        with pytest.raises(QueueUnauthorized):
            await client.list_tasks()
    assert seen == ["Bearer wrong"]


async def test_an_unreadable_token_is_a_one_line_queue_error_that_names_no_value() -> None:
    async def missing(*, fresh: bool = False) -> str:
        raise TokenUnavailable("secret block 'queue' not found on the Prefect server")

    seen: list[str] = []
    async with RemoteQueueClient(
        BASE, missing, transport=queue_accepting("x", seen), retry=RetryPolicy(0)
    ) as client:
        with pytest.raises(QueueError) as caught:
            await client.list_tasks()
    assert str(caught.value) == (
        "token unavailable: secret block 'queue' not found on the Prefect server"
    )
    assert seen == []  # nothing was sent without a token


async def test_secret_values_are_reused_for_the_ttl_and_read_again_when_fresh() -> None:
    reads: list[str] = []
    values = {"q": "v1"}

    async def load(name: str) -> str:
        reads.append(name)
        return values[name]

    tokens = SecretTokens(ttl=3600, load=load)
    assert await tokens.get("q") == "v1"
    values["q"] = "v2"
    assert await tokens.get("q") == "v1"  # within the TTL
    assert await tokens.get("q", fresh=True) == "v2"
    assert reads == ["q", "q"]
    assert "v1" not in repr(tokens) and "v2" not in repr(tokens)

    expired = SecretTokens(ttl=0, load=load)
    await expired.get("q")
    await expired.get("q")
    assert len(reads) == 4


async def test_a_loader_failure_becomes_token_unavailable_naming_the_block() -> None:
    async def broken(name: str) -> str:
        raise ConnectionError("api down, sent Bearer abc")

    with pytest.raises(TokenUnavailable) as caught:
        await SecretTokens(ttl=60, load=broken).get("agents")
    assert str(caught.value) == "secret block 'agents' could not be read (ConnectionError)"
