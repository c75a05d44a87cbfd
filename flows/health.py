"""The health flow: probe every active agent at once and record who is healthy."""

from __future__ import annotations

import asyncio

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Failed
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.flows.reports import database_line, publish_agent_health, run_name
from agent_dispatch.services.health import PROBES_AT_ONCE, Health, Probe
from agent_dispatch.tasks.health_tasks import agents_to_probe, probe_agent, record_health


class HealthSummary(BaseModel):
    agents: list[dict[str, object]] = Field(default_factory=list)
    stopped_reason: str | None = None  # the outage that ended the run Failed

    @property
    def unhealthy(self) -> int:
        return sum(1 for a in self.agents if not a["healthy"])

    def headline(self) -> str:
        n = len(self.agents)
        stopped = f"; stopped: {self.stopped_reason}" if self.stopped_reason else ""
        return f"health: {n - self.unhealthy} of {n} agents healthy{stopped}"


@flow(name="health", flow_run_name=run_name("health"))
async def health_flow() -> HealthSummary | State[HealthSummary]:
    """Probe /health of every active agent; matching leaves out the ones marked unhealthy.

    Without its database the run ends Failed with that one line (an unreachable agent is
    what the run reports, not a reason to fail it).
    """
    rt = get_runtime()
    rt.hold_clients()  # closed by the last run of this process to end
    gate = asyncio.Semaphore(PROBES_AT_ONCE)

    async def one(probe: Probe) -> Health:
        async with gate:
            return await probe_agent(probe)

    results: list[Health] = []
    stopped: str | None = None
    try:
        results = list(await asyncio.gather(*(one(p) for p in await agents_to_probe())))
        await record_health(results)
    except OperationalError as exc:  # the database refused a connection or went away
        stopped = database_line(exc)
    finally:
        await rt.aclose_clients()
    logger = get_run_logger()
    for h in results:
        logger.info("%s %s: %s", h.name, "healthy" if h.healthy else "UNHEALTHY", h.detail)
    summary = HealthSummary(
        agents=[{"name": h.name, "healthy": h.healthy, "detail": h.detail} for h in results],
        stopped_reason=stopped,
    )
    logger.info(summary.headline())
    await publish_agent_health(summary.agents, summary.headline())
    if stopped:
        logger.error("health check stopped: %s", stopped)
        return Failed(message=stopped, data=summary)
    return summary
