"""What a workflow run reads: the queue task as references see it, the task's own step
fields, each step's latest try, and a parent's ending as a run line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent_dispatch.db.models import Job
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.domain.workflow_run import StepState
from agent_dispatch.services.dispatching import JobLine
from agent_dispatch.services.finishing import JobEnd


def job_context(spec: JobSpec) -> dict[str, Any]:
    """The queue task as references see it (`job.payload.brief`, `job.title`, ...)."""
    return {
        "id": spec.queue_task_id,
        "title": spec.title,
        "description": spec.description,
        "category": spec.category,
        "tags": list(spec.tags),
        "skillLevel": spec.skill_level,
        "payload": spec.payload,
        "maxAgents": spec.max_agents,
        "timeoutMs": spec.timeout_ms,
        "workflow": spec.workflow,
    }


def task_fields(spec: JobSpec) -> dict[str, Any]:
    """The task's own step fields, those it set (a default value is not an instruction)."""
    return {
        "category": spec.category,
        "tags": list(spec.tags) or None,
        "skillLevel": spec.skill_level if spec.skill_level > 1 else None,
        "maxAgents": spec.max_agents,
        "timeoutMs": spec.timeout_ms,
    }


def latest_states(steps: Sequence[Job]) -> dict[str, StepState]:
    out: dict[str, StepState] = {}
    for job in steps:  # in creation order: a later try replaces an earlier one
        assert job.step_id is not None
        out[job.step_id] = StepState(
            JobStatus(job.status), job.step_try or 1, job.result, job.error
        )
    return out


def line_of(end: JobEnd) -> JobLine:
    return JobLine(
        queue_task_id=end.queue_task_id,
        job_id=end.job_id,
        outcome=end.status,
        detail=end.error or end.report_problem,
    )
