"""Register, change, remove and list agents, with the same checks on every surface.

Values come back as `AgentView` (no ORM object escapes a transaction); a refused request raises
`Invalid`, `Conflict` or `NotFound` with a one-line message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterable

from agent_dispatch.clients.errors import AgentCallError, TokenUnavailable
from agent_dispatch.clients.netguard import check_url
from agent_dispatch.clients.protocols import A2A, PROTOCOLS
from agent_dispatch.db.agent_repository import DuplicateAgent
from agent_dispatch.db.models import Agent
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.netpolicy import UnsafeAddress, check_url_shape
from agent_dispatch.services.deps import Deps, in_transaction, secret_block_of
from agent_dispatch.services.errors import Conflict, Invalid, NotFound

MAX_NAME = 100  # the column's width
MAX_URL = 2000


@dataclasses.dataclass(frozen=True, slots=True)
class AgentView:
    """An agent as every surface shows it: profile, health, statistics, circuit."""

    id: str
    name: str
    url: str
    protocol: str
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    skill_level: int
    max_concurrency: int
    active: bool
    token_ref: str | None
    healthy: bool | None
    health_detail: str | None
    runs: int
    successes: int
    failures: int
    wins: int
    cancelled: int
    success_rate: float | None
    reputation: float
    avg_latency_ms: float | None
    circuit_open_until: dt.datetime | None

    @classmethod
    def of(cls, a: Agent) -> AgentView:
        return cls(
            a.id, a.name, a.url, a.protocol, tuple(a.categories), tuple(a.tags), a.skill_level,
            a.max_concurrency, a.active, a.token_ref, a.healthy, a.health_detail, a.runs,
            a.successes, a.failures, a.wins, a.cancelled, a.success_rate, a.reputation,
            a.avg_latency_ms, a.circuit_open_until,
        )  # fmt: skip


async def register_agent(
    deps: Deps,
    name: str,
    url: str,
    *,
    categories: Iterable[str],
    tags: Iterable[str] = (),
    protocol: str = "http-json",
    skill_level: int = 1,
    max_concurrency: int = 1,
    token_ref: str | None = None,
) -> AgentView:
    """Store a new agent after checking its URL (shape, and every resolved address public
    unless AGENT_ALLOW_PRIVATE_NETWORKS) and that its token name is configured."""
    if not name or len(name) > MAX_NAME:
        raise Invalid(f"an agent name has 1 to {MAX_NAME} characters", "name")
    if protocol not in PROTOCOLS:
        raise Invalid(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}", "protocol")
    await _check_token_ref(deps, token_ref)
    await _check_address(deps, url)
    if protocol == A2A:
        categories, tags = await _from_card(deps, name, url, token_ref, categories, tags)
    cats, tag_set = _labels(categories), _labels(tags)
    _check_profile(cats, skill_level, max_concurrency)
    agent = Agent(
        name=name,
        url=url.rstrip("/"),
        protocol=protocol,
        categories=cats,
        tags=tag_set,
        skill_level=skill_level,
        max_concurrency=max_concurrency,
        token_ref=token_ref or None,
    )

    def work(uow: UnitOfWork) -> AgentView:
        try:
            return AgentView.of(uow.agents.add(agent))
        except DuplicateAgent as exc:
            raise Conflict(str(exc)) from None

    return await in_transaction(deps, work)


async def update_agent(
    deps: Deps,
    name: str,
    *,
    active: bool | None = None,
    categories: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    skill_level: int | None = None,
    max_concurrency: int | None = None,
) -> AgentView:
    """Change what is given (None leaves a field as it is); in-flight calls are unaffected."""
    cats = _labels(categories) if categories is not None else None
    _check_profile(cats, skill_level, max_concurrency)

    def work(uow: UnitOfWork) -> AgentView:
        agent = uow.agents.get_by_name(name)
        if agent is None:
            raise NotFound(f"no agent named {name!r}")
        if active is not None:
            agent.active = active
        if cats is not None:
            agent.categories = cats
        if tags is not None:
            agent.tags = _labels(tags)
        if skill_level is not None:
            agent.skill_level = skill_level
        if max_concurrency is not None:
            agent.max_concurrency = max_concurrency
        uow.session.flush()
        return AgentView.of(agent)

    return await in_transaction(deps, work)


async def remove_agent(deps: Deps, name: str) -> None:
    """Remove an agent; the jobs it worked on keep its name in their history."""

    def work(uow: UnitOfWork) -> None:
        if not uow.agents.remove(name):
            raise NotFound(f"no agent named {name!r}")

    await in_transaction(deps, work)


async def list_agents(deps: Deps) -> list[AgentView]:
    """Every agent, by name."""
    return await in_transaction(deps, lambda uow: [AgentView.of(a) for a in uow.agents.list()])


def _labels(values: Iterable[str]) -> list[str]:
    """Categories and tags are sets: stored sorted, once each, blanks dropped."""
    return sorted({v.strip() for v in values if v.strip()})


def _check_profile(
    categories: list[str] | None, skill_level: int | None, max_concurrency: int | None
) -> None:
    if categories is not None and not categories:
        raise Invalid("give at least one category the agent can work on", "categories")
    if skill_level is not None and not 1 <= skill_level <= 5:
        raise Invalid(f"skill level {skill_level} is not between 1 and 5", "skillLevel")
    if max_concurrency is not None and max_concurrency < 1:
        raise Invalid(f"max concurrency {max_concurrency} is not at least 1", "maxConcurrency")


async def _from_card(
    deps: Deps,
    name: str,
    url: str,
    token_ref: str | None,
    categories: Iterable[str],
    tags: Iterable[str],
) -> tuple[Iterable[str], Iterable[str]]:
    """Read an A2A agent's card: its skills' tags join the given tags, and its skill ids are
    the categories unless some are given. A card that is malformed, offers no binding we
    speak, or points its endpoint at an address we refuse, is refused in one line."""
    try:
        token = await deps.agent_token(token_ref)
        card = await deps.agents().fetch_card(url, name=name, token=token)
    except AgentCallError as exc:
        raise Invalid(f"agent card refused: {exc}", "url") from None
    await _check_address(deps, card.rpc_url)
    given = list(categories)
    return (given or list(card.default_categories)), [*tags, *card.tags]


async def _check_token_ref(deps: Deps, token_ref: str | None) -> None:
    """A token ref must name something that exists now: an AGENT_TOKENS key, or a Secret
    block this process can read (`secret-block:NAME`, read once here)."""
    if not token_ref:
        return
    if secret_block_of(token_ref) is None:
        if token_ref not in deps.settings.agent_tokens:
            raise Invalid(f"token ref {token_ref!r} is not a key of AGENT_TOKENS", "tokenRef")
        return
    try:
        await deps.agent_token(token_ref)
    except TokenUnavailable as exc:
        raise Invalid(f"token refused: {exc}", "tokenRef") from None


async def _check_address(deps: Deps, url: str) -> None:
    """The SSRF guard at the door: refuse an agent we would refuse to call later."""
    if len(url) > MAX_URL:
        raise Invalid(f"agent URL refused: longer than {MAX_URL} characters", "url")
    try:
        check_url_shape(url)
        if not deps.settings.agent_allow_private_networks:
            await asyncio.to_thread(check_url, url)  # resolves the host: off the event loop
    except UnsafeAddress as exc:
        raise Invalid(f"agent URL refused: {exc}", "url") from None
