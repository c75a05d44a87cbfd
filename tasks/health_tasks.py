"""Health tasks: one Prefect task run per probe; the work is in agent_dispatch.services.health."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.services import health
from agent_dispatch.services.health import Health, Probe


@task(name="list-agents-to-probe", cache_policy=NO_CACHE)
async def agents_to_probe() -> list[Probe]:
    return await health.agents_to_probe(get_runtime())


@task(name="probe-agent", cache_policy=NO_CACHE, task_run_name="probe {probe.name}")
async def probe_agent(probe: Probe) -> Health:
    """GET /health within AGENT_HEALTH_TIMEOUT_SECONDS; any failure means unhealthy."""
    return await health.probe_agent(get_runtime(), probe)


@task(name="record-health", cache_policy=NO_CACHE)
async def record_health(results: list[Health]) -> None:
    await health.record_health(get_runtime(), results)
