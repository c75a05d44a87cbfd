"""Request and response bodies: camelCase on the wire (like the queue and agent contracts)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from agent_dispatch.domain.statuses import JobStatus

Protocol = Literal["http-json", "a2a"]
JobKind = Literal["job", "workflow", "step"]
Name = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Api(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Input(Api):
    """A request body: unknown fields are a 422, not silently ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def _labels(values: list[str]) -> list[str]:
    cleaned = sorted({v.strip() for v in values})
    if any(not v for v in cleaned):
        raise ValueError("labels must not be empty")
    return cleaned


class AgentIn(Input):
    """`POST /api/agents`: the fields of `agent-dispatch agents add`."""

    name: str = Name
    url: str = Field(min_length=1, max_length=2000)
    protocol: Protocol = "http-json"
    categories: list[str] = Field(min_length=1, description="At least one category")
    tags: list[str] = Field(default_factory=list)
    skill_level: int = Field(default=1, ge=1, le=5)
    max_concurrency: int = Field(default=1, ge=1, le=1000)
    token_ref: str | None = Field(default=None, description="Name of its token in AGENT_TOKENS")

    _clean = field_validator("categories", "tags")(_labels)


class AgentPatch(Input):
    """`PATCH /api/agents/{name}`: only the fields given change."""

    active: bool | None = None
    categories: list[str] | None = Field(default=None, min_length=1)
    tags: list[str] | None = None
    skill_level: int | None = Field(default=None, ge=1, le=5)
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)

    @field_validator("categories", "tags")
    @classmethod
    def _clean(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _labels(values)


class AgentOut(Api):
    id: str
    name: str
    url: str
    protocol: str
    categories: list[str]
    tags: list[str]
    skill_level: int
    max_concurrency: int
    active: bool
    healthy: bool | None
    health_detail: str | None
    health_checked_at: dt.datetime | None
    in_flight: int
    circuit_open: bool
    circuit_open_until: dt.datetime | None
    runs: int
    successes: int
    failures: int
    timeouts: int
    wins: int
    cancelled: int
    success_rate: float | None
    reputation: float
    avg_latency_ms: float | None


class JobOut(Api):
    id: str
    queue_task_id: str
    kind: JobKind = Field(description="job; workflow (a parent of steps); step (of a workflow)")
    workflow: str | None = Field(description="The workflow a parent runs")
    step_id: str | None = Field(description="A step job's step")
    parent_job_id: str | None = Field(description="A step job's parent")
    parent_queue_task_id: str | None = Field(description="A step job's parent, as `/api/jobs/{id}`")
    title: str
    category: str
    tags: list[str]
    skill_level: int
    status: JobStatus
    queue_status: str | None
    attempts: int
    winner: str | None
    winner_latency_ms: float | None
    error: str | None
    match_summary: str | None
    created_at: dt.datetime
    distributed_at: dt.datetime | None
    finished_at: dt.datetime | None
    end_to_end_ms: float | None
    flow_run_id: str | None
    flow_run_url: str | None


class AgentRunOut(Api):
    agent: str
    agent_id: str | None
    rank: int
    status: str
    won: bool
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    latency_ms: float | None
    failure_kind: str | None
    error: str | None


class AttemptOut(Api):
    id: str
    attempt: int
    status: str
    flow_run_id: str | None
    flow_run_url: str | None
    started_at: dt.datetime
    first_result_at: dt.datetime | None
    finished_at: dt.datetime | None
    time_to_first_result_ms: float | None
    error: str | None
    agents: list[AgentRunOut]
    decisions: list[dict[str, Any]] = Field(description="Why each agent was chosen or not")


class StepOut(Api):
    """One step of a workflow run (its latest try); times in ms from the parent's start."""

    step_id: str
    needs: list[str]
    job_id: str | None
    queue_task_id: str | None = Field(description="The step job, as `/api/jobs/{id}`")
    status: str = Field(description="A job status, SKIPPED, or WAITING (not started yet)")
    tries: int
    winner: str | None
    winner_latency_ms: float | None
    agents: int
    start_ms: float | None
    end_ms: float | None
    error: str | None
    skipped_reason: str | None


class JobDetail(JobOut):
    description: str
    payload: dict[str, Any]
    result: Any
    expires_at: dt.datetime | None
    distributions: list[AttemptOut]
    steps: list[StepOut] | None = Field(
        default=None, description="A workflow parent's steps, in the workflow's order"
    )


class JobPage(Api):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class Cancelled(Api):
    queue_task_id: str
    status: JobStatus
    message: str


class RunIn(Input):
    """`POST /api/runs`: the dispatch parameters (as in the Prefect UI form)."""

    max_jobs: int | None = Field(default=None, ge=1)
    page_size: int | None = Field(default=None, ge=1, le=500)


class RunStarted(Api):
    flow_run_id: str
    flow_run_url: str | None
    via: Literal["deployment", "this process"]


class Check(Api):
    ok: bool
    detail: str


class HealthOut(Api):
    ok: bool
    database: Check
    queue: Check


class Meta(Api):
    version: str
    prefect_ui_url: str | None
    dashboard_url: str | None
    auth_required: bool
    public_read: bool
