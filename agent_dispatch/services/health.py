"""Agent health: probe each active agent's /health and record it, so matching skips the sick."""

from __future__ import annotations

import asyncio
import dataclasses

from agent_dispatch.clients.agent import AgentEndpoint
from agent_dispatch.clients.errors import AgentCallError, TokenUnavailable
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.services.deps import Deps, in_transaction

PROBES_AT_ONCE = 20  # enough to probe a large fleet in one timeout, few enough to be polite


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One agent to probe; the token travels by reference, never as a value."""

    agent_id: str
    name: str
    url: str
    token_ref: str | None
    protocol: str = "http-json"


@dataclasses.dataclass(frozen=True, slots=True)
class Health:
    agent_id: str
    name: str
    healthy: bool
    detail: str


async def agents_to_probe(deps: Deps) -> list[Probe]:
    """Every active agent (an inactive one is never matched, so its health does not matter)."""

    def work(uow: UnitOfWork) -> list[Probe]:
        return [
            Probe(a.id, a.name, a.url, a.token_ref, a.protocol)
            for a in uow.agents.list()
            if a.active
        ]

    return await in_transaction(deps, work)


async def probe_agent(deps: Deps, probe: Probe) -> Health:
    """GET /health within AGENT_HEALTH_TIMEOUT_SECONDS; any failure means unhealthy."""
    try:
        token = await deps.agent_token(probe.token_ref)
    except TokenUnavailable as exc:
        return Health(probe.agent_id, probe.name, False, str(exc))
    endpoint = AgentEndpoint(probe.agent_id, probe.name, probe.url, token, probe.protocol)
    try:
        report = await deps.agents().health(
            endpoint, timeout=deps.settings.agent_health_timeout_seconds
        )
    except AgentCallError as exc:
        return Health(probe.agent_id, probe.name, False, str(exc))
    detail: str = report.status
    if report.load is not None:
        detail += f", load {report.load:.2f}"
    return Health(probe.agent_id, probe.name, True, detail)


async def record_health(deps: Deps, results: list[Health]) -> None:
    """Store each result in one transaction; an agent removed while we probed is skipped."""

    def work(uow: UnitOfWork) -> None:
        now = utcnow()
        for h in results:
            agent = uow.agents.get(h.agent_id)
            if agent is not None:
                uow.agents.record_health(agent, h.healthy, h.detail, now)

    await in_transaction(deps, work)


async def check_health(deps: Deps, at_once: int = PROBES_AT_ONCE) -> list[Health]:
    """Probe every active agent, `at_once` at a time, and record the results."""
    gate = asyncio.Semaphore(at_once)

    async def one(probe: Probe) -> Health:
        async with gate:
            return await probe_agent(deps, probe)

    results = list(await asyncio.gather(*(one(p) for p in await agents_to_probe(deps))))
    await record_health(deps, results)
    return results
