"""Health tasks: probe each agent's /health and record it, so matching skips the sick ones."""

from __future__ import annotations

import dataclasses

from prefect import task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.clients.agent import AgentEndpoint
from agent_dispatch.clients.errors import AgentCallError
from agent_dispatch.db.models import Agent
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.tasks.dbio import in_transaction


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One agent to probe; the token travels by reference, never as a value."""

    agent_id: str
    name: str
    url: str
    token_ref: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Health:
    agent_id: str
    name: str
    healthy: bool
    detail: str


@task(name="list-agents-to-probe", cache_policy=NO_CACHE)
async def agents_to_probe() -> list[Probe]:
    def work(uow: UnitOfWork) -> list[Probe]:
        return [Probe(a.id, a.name, a.url, a.token_ref) for a in uow.agents.list() if a.active]

    return await in_transaction(work)


@task(name="probe-agent", cache_policy=NO_CACHE, task_run_name="probe {probe.name}")
async def probe_agent(probe: Probe) -> Health:
    """GET /health within AGENT_HEALTH_TIMEOUT_SECONDS; any failure means unhealthy."""
    rt = get_runtime()
    endpoint = AgentEndpoint(probe.agent_id, probe.name, probe.url, rt.agent_token(probe.token_ref))
    try:
        report = await rt.agents().health(
            endpoint, timeout=rt.settings.agent_health_timeout_seconds
        )
    except AgentCallError as exc:
        return Health(probe.agent_id, probe.name, False, str(exc))
    detail: str = report.status
    if report.load is not None:
        detail += f", load {report.load:.2f}"
    return Health(probe.agent_id, probe.name, True, detail)


@task(name="record-health", cache_policy=NO_CACHE)
async def record_health(results: list[Health]) -> None:
    def work(uow: UnitOfWork) -> None:
        now = utcnow()
        for h in results:
            agent = uow.session.get(Agent, h.agent_id)
            if agent is not None:  # removed while we probed
                uow.agents.record_health(agent, h.healthy, h.detail, now)

    await in_transaction(work)
