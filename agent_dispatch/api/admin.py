"""SEAM — agent administration and job cancel, as the API calls them.

`agent_dispatch.services.agents` (register_agent / update_agent / remove_agent / list_agents)
and `agent_dispatch.services.operations.cancel_job` are being written on another branch.
Until they are on main these thin functions do the same work with what exists: the checks of
`agent-dispatch agents add` (cli/agents_cmd.py, SSRF guard included) and
`agent_dispatch.operations.cancel_job`. At merge, point each function here at its service
and keep the AdminError mapping (the routers only know these five names).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.agent_repository import DuplicateAgent
from agent_dispatch.db.models import Agent
from agent_dispatch.domain.netpolicy import UnsafeAddress, check_url_shape
from agent_dispatch.operations import OperationError
from agent_dispatch.operations import cancel_job as _cancel_job


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


def _check_url(rt: Runtime, url: str) -> None:
    """The same refusal as `agents add`: a bad shape always, private addresses unless allowed."""
    try:
        check_url_shape(url)
        if not rt.settings.agent_allow_private_networks:
            from agent_dispatch.clients.netguard import check_url

            check_url(url)  # resolves the host: blocking, so callers run this in a thread
    except UnsafeAddress as exc:
        raise AdminError(422, f"agent URL refused: {exc}", "url") from None


def _register(rt: Runtime, fields: dict[str, Any]) -> AgentView:
    _check_url(rt, fields["url"])
    token_ref = fields.get("token_ref")
    if token_ref and token_ref not in rt.settings.agent_tokens:
        raise AdminError(422, f"tokenRef {token_ref!r} is not a key of AGENT_TOKENS", "tokenRef")
    with rt.uow() as uow:
        try:
            agent = uow.agents.add(Agent(**{**fields, "url": fields["url"].rstrip("/")}))
        except DuplicateAgent as exc:
            raise AdminError(409, str(exc), "name") from None
        uow.commit()
        return AgentView(agent, 0)


async def register_agent(rt: Runtime, fields: dict[str, Any]) -> AgentView:
    return await asyncio.to_thread(_register, rt, fields)


def _update(rt: Runtime, name: str, changes: dict[str, Any]) -> AgentView:
    with rt.uow() as uow:
        agent = uow.agents.get_by_name(name)
        if agent is None:
            raise AdminError(404, f"no agent named {name!r}")
        for key, value in changes.items():
            setattr(agent, key, value)
        uow.session.flush()
        in_flight = uow.agents.in_flight_counts([agent.id]).get(agent.id, 0)
        uow.commit()
        return AgentView(agent, in_flight)


async def update_agent(rt: Runtime, name: str, changes: dict[str, Any]) -> AgentView:
    return await asyncio.to_thread(_update, rt, name, changes)


def _remove(rt: Runtime, name: str) -> None:
    with rt.uow() as uow:
        if not uow.agents.remove(name):
            raise AdminError(404, f"no agent named {name!r}")
        uow.commit()


async def remove_agent(rt: Runtime, name: str) -> None:
    await asyncio.to_thread(_remove, rt, name)


def _list(rt: Runtime) -> list[AgentView]:
    with rt.uow() as uow:
        counts = uow.agents.in_flight_counts()
        return [AgentView(a, counts.get(a.id, 0)) for a in uow.agents.list()]


async def list_agents(rt: Runtime) -> list[AgentView]:
    return await asyncio.to_thread(_list, rt)


async def cancel_job(rt: Runtime, ref: str) -> tuple[str, str]:
    """Cancel a job (agents stopped, queue told): (its queue task id, what happened).
    404 for an unknown job, 409 for one already finished."""

    def queue_task_id() -> str | None:
        with rt.uow() as uow:
            job = uow.jobs.find(ref)
            return job.queue_task_id if job is not None else None

    qid = await asyncio.to_thread(queue_task_id)
    if qid is None:
        raise AdminError(404, f"no job {ref!r}")
    try:
        return qid, await _cancel_job(rt, ref)
    except OperationError as exc:
        raise AdminError(409, str(exc)) from None
