"""The health flow: probe every active agent at once and record who is healthy."""

from __future__ import annotations

import asyncio

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.flows.reports import publish_agent_health, run_name
from agent_dispatch.services.health import PROBES_AT_ONCE, Health, Probe
from agent_dispatch.tasks.health_tasks import agents_to_probe, probe_agent, record_health


class HealthSummary(BaseModel):
    agents: list[dict[str, object]] = Field(default_factory=list)

    @property
    def unhealthy(self) -> int:
        return sum(1 for a in self.agents if not a["healthy"])

    def headline(self) -> str:
        n = len(self.agents)
        return f"health: {n - self.unhealthy} of {n} agents healthy"


@flow(name="health", flow_run_name=run_name("health"))
async def health_flow() -> HealthSummary:
    """Probe /health of every active agent; matching leaves out the ones marked unhealthy."""
    rt = get_runtime()
    rt.hold_clients()  # closed by the last run of this process to end
    gate = asyncio.Semaphore(PROBES_AT_ONCE)

    async def one(probe: Probe) -> Health:
        async with gate:
            return await probe_agent(probe)

    try:
        results = list(await asyncio.gather(*(one(p) for p in await agents_to_probe())))
        await record_health(results)
    finally:
        await rt.aclose_clients()
    logger = get_run_logger()
    for h in results:
        logger.info("%s %s: %s", h.name, "healthy" if h.healthy else "UNHEALTHY", h.detail)
    summary = HealthSummary(
        agents=[{"name": h.name, "healthy": h.healthy, "detail": h.detail} for h in results]
    )
    logger.info(summary.headline())
    await publish_agent_health(summary.agents, summary.headline())
    return summary
