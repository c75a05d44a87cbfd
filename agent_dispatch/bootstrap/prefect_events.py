"""The production event sink: Prefect events for every job and agent status change."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

JOB_EVENT = "agent-dispatch.job.{status}"
AGENT_EVENT = "agent-dispatch.agent.{status}"


def _job_resource(job_id: str, queue_task_id: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"agent-dispatch.job.{job_id}",
        "prefect.resource.name": queue_task_id,
        "prefect.resource.role": "job",
    }


def _agent_related(agent_id: str | None, agent_name: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"agent-dispatch.agent.{agent_id or agent_name}",
        "prefect.resource.name": agent_name,
        "prefect.resource.role": "agent",
    }


def job_status_changed(job_id: str, queue_task_id: str, status: str, **payload: Any) -> None:
    """Emit agent-dispatch.job.<status>; the flow run is related automatically by Prefect."""
    related = []
    if payload.get("agent_id"):
        related.append(_agent_related(payload["agent_id"], payload.get("agent_name") or ""))
    _emit(
        JOB_EVENT.format(status=status.lower()),
        resource=_job_resource(job_id, queue_task_id),
        related=related,
        payload={k: v for k, v in payload.items() if v is not None},
    )


def agent_status_changed(
    job_id: str,
    queue_task_id: str,
    agent_id: str | None,
    agent_name: str,
    status: str,
    **payload: Any,
) -> None:
    """Emit agent-dispatch.agent.<status> with the agent as resource and the job related."""
    resource = _agent_related(agent_id, agent_name)
    resource.pop("prefect.resource.role")
    job = _job_resource(job_id, queue_task_id)
    _emit(
        AGENT_EVENT.format(status=status.lower()),
        resource=resource,
        related=[job],
        payload={k: v for k, v in payload.items() if v is not None},
    )


def emit_event(event: str, **fields: Any) -> None:
    """prefect.events.emit_event, imported on first use: Prefect costs ~2 s of start-up that
    CLI commands which emit nothing skip."""
    from prefect.events import emit_event as emit

    emit(event, **fields)


def _emit(
    event: str, resource: dict[str, str], related: list[dict[str, str]], payload: dict[str, Any]
) -> None:
    try:
        emit_event(event, resource=resource, related=related, payload=payload)
    except Exception:  # events are a feed, never a reason to fail a job
        log.warning("could not emit %s", event, exc_info=True)


class PrefectEvents:
    """`EventSink` that emits Prefect events (related to the current flow and task run)."""

    def job_changed(self, job_id: str, queue_task_id: str, status: str, **detail: Any) -> None:
        job_status_changed(job_id, queue_task_id, status, **detail)

    def agent_changed(
        self,
        job_id: str,
        queue_task_id: str,
        agent_id: str | None,
        agent_name: str,
        status: str,
        **detail: Any,
    ) -> None:
        agent_status_changed(job_id, queue_task_id, agent_id, agent_name, status, **detail)
