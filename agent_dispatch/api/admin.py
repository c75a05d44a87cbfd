"""Agent administration and job cancel as the API calls them: the same services as the CLI
(`services/agents.py`, `services/cancel.py`), their refusals mapped to HTTP statuses
(NotFound 404, Conflict 409, Invalid 422 naming the field), and the agent read back with its
in-flight count for the answer."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Agent
from agent_dispatch.services import agents, cancel
from agent_dispatch.services.errors import Conflict, Invalid, NotFound, Refused


class AdminError(Exception):
    """Why an admin action was refused: HTTP status, message and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


@dataclasses.dataclass(frozen=True, slots=True)
class AgentView:
    agent: Agent
    in_flight: int


def _refusal(exc: Refused) -> AdminError:
    if isinstance(exc, NotFound):
        return AdminError(404, str(exc))
    if isinstance(exc, Conflict):
        return AdminError(409, str(exc), "name")
    field = exc.field if isinstance(exc, Invalid) else None
    return AdminError(422, str(exc), field)


def _view(rt: Runtime, name: str) -> AgentView:
    with rt.uow() as uow:
        agent = uow.agents.get_by_name(name)
        if agent is None:
            raise AdminError(404, f"no agent named {name!r}")
        return AgentView(agent, uow.agents.in_flight_counts([agent.id]).get(agent.id, 0))


async def register_agent(rt: Runtime, fields: dict[str, Any]) -> AgentView:
    """The checks of `agents add`, an A2A agent's card included."""
    try:
        done = await agents.register_agent(
            rt,
            fields["name"],
            fields["url"],
            categories=fields.get("categories") or [],
            tags=fields.get("tags") or [],
            protocol=fields.get("protocol") or "http-json",
            skill_level=fields.get("skill_level") or 1,
            max_concurrency=fields.get("max_concurrency") or 1,
            token_ref=fields.get("token_ref"),
        )
    except Refused as exc:
        raise _refusal(exc) from None
    return await asyncio.to_thread(_view, rt, done.name)


async def update_agent(rt: Runtime, name: str, changes: dict[str, Any]) -> AgentView:
    try:
        await agents.update_agent(rt, name, **changes)
    except Refused as exc:
        raise _refusal(exc) from None
    return await asyncio.to_thread(_view, rt, name)


async def remove_agent(rt: Runtime, name: str) -> None:
    try:
        await agents.remove_agent(rt, name)
    except Refused as exc:
        raise _refusal(exc) from None


def _list(rt: Runtime) -> list[AgentView]:
    with rt.uow() as uow:
        counts = uow.agents.in_flight_counts()
        return [AgentView(a, counts.get(a.id, 0)) for a in uow.agents.list()]


async def list_agents(rt: Runtime) -> list[AgentView]:
    return await asyncio.to_thread(_list, rt)


async def cancel_job(rt: Runtime, ref: str) -> tuple[str, str]:
    """Cancel a job (agents stopped, queue told): (its queue task id, what happened)."""
    try:
        done = await cancel.cancel_job(rt, ref)
    except Refused as exc:
        raise _refusal(exc) from None
    return done.queue_task_id, done.message()
