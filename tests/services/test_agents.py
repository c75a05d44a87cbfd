"""Registering, changing and removing agents: the checks every surface shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent_dispatch.services.agents import (
    list_agents,
    register_agent,
    remove_agent,
    update_agent,
)
from agent_dispatch.services.errors import Conflict, Invalid, NotFound
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def deps(make_deps: Callable[..., TestDeps]) -> TestDeps:
    return make_deps(agent_tokens={"alpha-token": "s3cret"})


async def test_a_registered_agent_is_stored_with_a_clean_profile(deps: TestDeps) -> None:
    made = await register_agent(
        deps,
        "alpha",
        "http://127.0.0.1:9/",
        categories=["text", "code", "text", " "],
        tags=["en"],
        skill_level=3,
        max_concurrency=2,
        token_ref="alpha-token",
    )

    assert (made.url, made.categories, made.tags) == (
        "http://127.0.0.1:9",
        ("code", "text"),
        ("en",),
    )
    assert (made.skill_level, made.max_concurrency, made.token_ref) == (3, 2, "alpha-token")
    assert (made.active, made.healthy, made.runs, made.reputation) == (True, None, 0, 0.5)
    assert await list_agents(deps) == [made]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"categories": []}, "give at least one category the agent can work on"),
        ({"url": "ftp://example.com/"}, "agent URL refused: scheme 'ftp' is not http or https"),
        ({"token_ref": "nope"}, "token ref 'nope' is not a key of AGENT_TOKENS"),
        (
            {"token_ref": "secret-block:nope"},
            "token refused: secret block 'nope' not found on the Prefect server",
        ),
        ({"protocol": "soap"}, "protocol 'soap' is not one of http-json, a2a"),
        ({"skill_level": 9}, "skill level 9 is not between 1 and 5"),
        ({"max_concurrency": 0}, "max concurrency 0 is not at least 1"),
        ({"name": ""}, "an agent name has 1 to 100 characters"),
    ],
)
async def test_a_bad_registration_is_refused_in_one_line_and_stores_nothing(
    deps: TestDeps, change: dict[str, Any], message: str
) -> None:
    request: dict[str, Any] = {"name": "x", "url": "http://127.0.0.1:9/", "categories": ["c"]}
    request.update(change)

    with pytest.raises(Invalid) as refused:
        await register_agent(deps, request.pop("name"), request.pop("url"), **request)

    assert str(refused.value) == message
    assert await list_agents(deps) == []


async def test_a_private_address_is_refused_unless_private_networks_are_allowed(
    make_deps: Callable[..., TestDeps],
) -> None:
    guarded = make_deps(agent_allow_private_networks=False)

    with pytest.raises(Invalid) as refused:
        await register_agent(guarded, "lo", "http://127.0.0.1:9/", categories=["c"])

    assert str(refused.value) == (
        "agent URL refused: '127.0.0.1' resolves to loopback address 127.0.0.1"
    )


async def test_a_taken_name_is_a_conflict(deps: TestDeps) -> None:
    await register_agent(deps, "alpha", "http://127.0.0.1:9/", categories=["text"])

    with pytest.raises(Conflict, match=r"^an agent named 'alpha' already exists$"):
        await register_agent(deps, "alpha", "http://127.0.0.1:10/", categories=["text"])
    assert [a.url for a in await list_agents(deps)] == ["http://127.0.0.1:9"]


async def test_an_update_changes_only_what_is_given(deps: TestDeps) -> None:
    before = await register_agent(
        deps, "alpha", "http://127.0.0.1:9/", categories=["text"], tags=["en"], skill_level=2
    )

    after = await update_agent(deps, "alpha", active=False, categories=["code"], max_concurrency=4)

    assert (after.active, after.categories, after.max_concurrency) == (False, ("code",), 4)
    assert (after.tags, after.skill_level, after.url) == (before.tags, 2, before.url)
    assert await list_agents(deps) == [after]


async def test_a_bad_update_is_refused_and_changes_nothing(deps: TestDeps) -> None:
    before = await register_agent(deps, "alpha", "http://127.0.0.1:9/", categories=["text"])

    with pytest.raises(Invalid, match=r"^skill level 0 is not between 1 and 5$"):
        await update_agent(deps, "alpha", categories=["code"], skill_level=0)
    with pytest.raises(NotFound, match=r"^no agent named 'beta'$"):
        await update_agent(deps, "beta", active=False)
    assert await list_agents(deps) == [before]


async def test_a_removed_agent_is_gone_and_an_unknown_one_is_not_found(deps: TestDeps) -> None:
    await register_agent(deps, "alpha", "http://127.0.0.1:9/", categories=["text"])

    await remove_agent(deps, "alpha")

    assert await list_agents(deps) == []
    with pytest.raises(NotFound, match=r"^no agent named 'alpha'$"):
        await remove_agent(deps, "alpha")


async def test_a_token_kept_in_a_readable_secret_block_is_accepted_by_reference(
    deps: TestDeps,
) -> None:
    deps.secret_blocks["acme-token"] = "s3cret"

    made = await register_agent(
        deps, "acme", "http://127.0.0.1:9/", categories=["c"], token_ref="secret-block:acme-token"
    )

    assert made.token_ref == "secret-block:acme-token"  # the reference, never the value
