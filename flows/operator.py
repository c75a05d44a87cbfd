"""Operator actions as small flows, for operators without a shell: the `cancel-job` and
`agent-admin` deployments, run from the UI's Custom run form. They call the services the CLI
calls (`agent-dispatch jobs cancel`, `agent-dispatch agents ...`), with the same checks.

A refused request (unknown job or agent, a job already finished, a bad URL) ends the run
Failed with the service's one line, so the UI shows why without a traceback.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.flows.reports import param, run_name
from agent_dispatch.services.agents import register_agent, remove_agent, update_agent
from agent_dispatch.services.cancel import cancel_job
from agent_dispatch.services.deps import block_ref
from agent_dispatch.services.errors import Refused


class CancelJobParams(BaseModel):
    """Which job to cancel."""

    model_config = ConfigDict(frozen=True)

    job: str = Field(
        min_length=1,
        max_length=200,
        description="The job's queue task id (its job id or an id prefix work too)",
    )


class AgentAction(enum.StrEnum):
    ADD = "add"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"  # out of matching; its history and statistics stay
    REMOVE = "remove"


class AgentAdminParams(BaseModel):
    """One change to the agent registry; only `add` reads the fields after `name`."""

    model_config = ConfigDict(frozen=True)

    action: AgentAction = Field(description="add, activate, deactivate or remove")
    name: str = Field(min_length=1, max_length=100, description="The agent's name")
    url: str | None = Field(default=None, max_length=2000, description="add: its base URL")
    protocol: Literal["http-json", "a2a"] = Field(default="http-json", description="add")
    categories: list[str] = Field(
        default_factory=list, description="add: categories it works on (a2a: from its card)"
    )
    tags: list[str] = Field(default_factory=list, description="add: tags it offers")
    skill_level: int = Field(default=1, ge=1, le=5, description="add")
    max_concurrency: int = Field(default=1, ge=1, description="add: calls at once")
    token_secret: str | None = Field(
        default=None, description="add: the Prefect Secret block holding its bearer token"
    )

    @model_validator(mode="after")
    def _add_needs_a_url(self) -> AgentAdminParams:
        if self.action is AgentAction.ADD and not self.url:
            raise ValueError("add needs the agent's url")
        return self


def _cancel_name(parameters: Mapping[str, Any]) -> str:
    return str(param(parameters, "params", "job") or "")


def _admin_name(parameters: Mapping[str, Any]) -> str:
    action = param(parameters, "params", "action")
    return f"{getattr(action, 'value', action) or ''} {param(parameters, 'params', 'name') or ''}"


@flow(name="cancel-job", flow_run_name=run_name("cancel-job", _cancel_name))
async def cancel_job_flow(params: CancelJobParams) -> State[Any]:
    """Cancel one job: lease revoked, agent calls stopped, the queue told (as `jobs cancel`)."""
    rt = get_runtime()
    rt.hold_clients()
    try:
        done = await cancel_job(rt, params.job)
    except Refused as exc:
        return Failed(message=str(exc))
    finally:
        await rt.aclose_clients()
    get_run_logger().info(done.message())
    return Completed(message=done.message(), data=done.message())


@flow(name="agent-admin", flow_run_name=run_name("agent-admin", _admin_name))
async def agent_admin_flow(params: AgentAdminParams) -> State[Any]:
    """Add, activate, deactivate or remove one agent (as `agent-dispatch agents ...`)."""
    rt = get_runtime()
    rt.hold_clients()
    try:
        said = await _apply(params)
    except Refused as exc:
        return Failed(message=str(exc))
    finally:
        await rt.aclose_clients()
    get_run_logger().info(said)
    return Completed(message=said, data=said)


async def _apply(p: AgentAdminParams) -> str:
    rt = get_runtime()
    if p.action is AgentAction.ADD:
        added = await register_agent(
            rt,
            p.name,
            p.url or "",
            categories=p.categories,
            tags=p.tags,
            protocol=p.protocol,
            skill_level=p.skill_level,
            max_concurrency=p.max_concurrency,
            token_ref=block_ref(p.token_secret) if p.token_secret else None,
        )
        return f"added agent {added.name} ({added.url}), categories {','.join(added.categories)}"
    if p.action is AgentAction.REMOVE:
        await remove_agent(rt, p.name)
        return f"removed agent {p.name}"
    changed = await update_agent(rt, p.name, active=p.action is AgentAction.ACTIVATE)
    return f"agent {changed.name} is now {'active' if changed.active else 'inactive'}"
