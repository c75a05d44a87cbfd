"""Health probes on SQLite and a loopback agent farm."""

from __future__ import annotations

import pytest

from agent_dispatch.services.agents import list_agents, update_agent
from agent_dispatch.services.health import Health, check_health, record_health
from agent_dispatch.simulators.agents import AgentFarm
from tests.support.reliability import add_agent
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_probes_mark_the_sick_unhealthy_and_the_well_healthy(
    deps: TestDeps, farm: AgentFarm
) -> None:
    for name, behaviour in (("sick", "unhealthy"), ("well", "fast")):
        farm.add(name, behaviour)
        add_agent(deps, name, farm.url_for(name))

    results = {h.name: h for h in await check_health(deps)}

    assert {n: h.healthy for n, h in results.items()} == {"sick": False, "well": True}
    assert results["sick"].detail and "\n" not in results["sick"].detail
    stored = {a.name: (a.healthy, a.health_detail) for a in await list_agents(deps)}
    assert stored == {n: (h.healthy, h.detail) for n, h in results.items()}


async def test_an_inactive_agent_is_not_probed(deps: TestDeps, farm: AgentFarm) -> None:
    farm.add("resting", "fast")
    add_agent(deps, "resting", farm.url_for("resting"))
    await update_agent(deps, "resting", active=False)

    assert await check_health(deps) == []
    assert farm.calls_for("resting") == [] and [a.healthy for a in await list_agents(deps)] == [
        None
    ]


async def test_a_result_for_an_agent_removed_meanwhile_is_dropped(deps: TestDeps) -> None:
    kept = add_agent(deps, "kept")

    await record_health(
        deps, [Health("removed-id", "gone", True, "ok"), Health(kept, "kept", False, "down")]
    )

    assert [(a.name, a.healthy) for a in await list_agents(deps)] == [("kept", False)]
