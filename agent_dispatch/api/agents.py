"""`/api/agents`: list, register (the checks of `agents add`), change, remove."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from agent_dispatch.api import admin
from agent_dispatch.api.admin import AdminError, AgentView
from agent_dispatch.api.errors import problem
from agent_dispatch.api.schemas import AgentIn, AgentOut, AgentPatch
from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.types import utcnow

router = APIRouter(prefix="/agents", tags=["agents"])


def out(view: AgentView) -> AgentOut:
    a, now = view.agent, utcnow()
    return AgentOut(
        id=a.id,
        name=a.name,
        url=a.url,
        protocol=a.protocol,
        categories=a.categories,
        tags=a.tags,
        skill_level=a.skill_level,
        max_concurrency=a.max_concurrency,
        active=a.active,
        healthy=a.healthy,
        health_detail=a.health_detail,
        health_checked_at=a.health_checked_at,
        in_flight=view.in_flight,
        circuit_open=a.circuit_open_until is not None and a.circuit_open_until > now,
        circuit_open_until=a.circuit_open_until,
        runs=a.runs,
        successes=a.successes,
        failures=a.failures,
        timeouts=a.timeouts,
        wins=a.wins,
        cancelled=a.cancelled,
        success_rate=a.success_rate,
        reputation=a.reputation,
        avg_latency_ms=a.avg_latency_ms,
    )


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


def _refused(exc: AdminError) -> Exception:
    return problem(exc.status, str(exc), exc.field)


@router.get("", response_model=list[AgentOut], summary="Agents with health and statistics")
async def list_agents(request: Request) -> list[AgentOut]:
    return [out(v) for v in await admin.list_agents(_rt(request))]


@router.post("", response_model=AgentOut, status_code=201, summary="Register an agent")
async def add_agent(request: Request, agent: AgentIn) -> AgentOut:
    """Same fields and checks as `agent-dispatch agents add` (the SSRF guard included)."""
    try:
        return out(await admin.register_agent(_rt(request), agent.model_dump()))
    except AdminError as exc:
        raise _refused(exc) from None


@router.patch("/{name}", response_model=AgentOut, summary="Change an agent")
async def change_agent(request: Request, name: str, changes: AgentPatch) -> AgentOut:
    """active, categories, tags, skillLevel, maxConcurrency: only the fields given change."""
    given = changes.model_dump(exclude_unset=True)
    nulls = sorted(k for k, v in given.items() if v is None)
    if nulls:
        field = AgentPatch.model_fields[nulls[0]].alias or nulls[0]
        raise problem(422, f"{field} cannot be null", field)
    try:
        return out(await admin.update_agent(_rt(request), name, given))
    except AdminError as exc:
        raise _refused(exc) from None


@router.delete("/{name}", status_code=204, summary="Remove an agent (its history stays)")
async def remove_agent(request: Request, name: str) -> Response:
    try:
        await admin.remove_agent(_rt(request), name)
    except AdminError as exc:
        raise _refused(exc) from None
    return Response(status_code=204)
