"""Pydantic models of the remote-queue and agent wire formats (camelCase on the wire)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from agent_dispatch.clients.errors import one_line
from agent_dispatch.domain.model import JobSpec, ResultStrategy, StrategyKind
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.domain.storable import json_problem, storable_text, text_problem

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_STORED_INT = 2**31 - 1  # integer columns are PostgreSQL int4


def _utc(value: dt.datetime) -> dt.datetime:
    # A timestamp without an offset is read as UTC so every datetime we hand on is aware; one
    # with an offset is moved to UTC now (the same instant), so an instant that UTC cannot
    # hold (year 1 at +14:00) is refused here rather than by the database.
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("out of the range of UTC datetimes") from None


def _storable(value: Any) -> Any:
    # Text we keep goes into PostgreSQL text columns: see domain/storable.py for the rule.
    # Before pydantic's own str check, so a lone surrogate gets this rule's clear reason.
    if isinstance(value, str) and (problem := text_problem(value)) is not None:
        raise PydanticCustomError("unstorable", problem)
    return value


UtcDatetime = Annotated[dt.datetime, AfterValidator(_utc)]
StoredText = Annotated[str, BeforeValidator(_storable)]
Tag = Annotated[StoredText, Field(min_length=1, max_length=100)]


class WireModel(BaseModel):
    """camelCase aliases, python names accepted too, unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready body, camelCase, without fields that were never set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class ResultStrategyWire(WireModel):
    """The task's optional resultStrategy: {type: first|best-score|quorum, quorum: k}."""

    type: Literal["first", "best-score", "quorum"]
    quorum: int | None = Field(None, ge=2, le=10)

    def to_domain(self) -> ResultStrategy:
        return ResultStrategy(StrategyKind(self.type), self.quorum or 2)


class QueueTask(WireModel):
    """One task as the remote queue lists it."""

    id: StoredText = Field(min_length=1, max_length=128)
    title: StoredText = Field(min_length=1, max_length=500)
    description: StoredText = Field("", max_length=20000)
    category: StoredText = Field(min_length=1, max_length=100)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    skill_level: int = Field(1, ge=1, le=5)
    payload: dict[str, Any] = Field(default_factory=dict)
    max_agents: int | None = Field(None, ge=1, le=10)
    timeout_ms: int | None = Field(None, ge=100, le=MAX_STORED_INT)
    expires_at: UtcDatetime | None = None
    workflow: str | None = Field(None, min_length=1, max_length=100)  # a registered workflow
    result_strategy: ResultStrategyWire | None = None
    # A plain string: a status this version does not know must not reject the task.
    status: str
    created_at: UtcDatetime
    result: Any = None
    error: str | None = None

    @field_validator("payload", mode="before")
    @classmethod
    def _payload_storable(cls, value: Any) -> Any:
        # Before the size check below: json.dumps must never meet an over-deep value.
        if isinstance(value, dict) and (problem := json_problem(value, "payload")):
            raise PydanticCustomError("unstorable", storable_text(problem))
        return value

    @field_validator("payload")
    @classmethod
    def _payload_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(f"larger than {MAX_PAYLOAD_BYTES} bytes as JSON")
        return value

    @property
    def job_status(self) -> JobStatus | None:
        """The status as a JobStatus, or None when this version does not know it."""
        try:
            return JobStatus(self.status)
        except ValueError:
            return None

    def to_job_spec(self) -> JobSpec:
        return JobSpec(
            queue_task_id=self.id,
            title=self.title,
            category=self.category,
            tags=tuple(self.tags),
            skill_level=self.skill_level,
            description=self.description,
            payload=self.payload,
            max_agents=self.max_agents,
            timeout_ms=self.timeout_ms,
            expires_at=self.expires_at,
            workflow=self.workflow,
            result_strategy=self.result_strategy.to_domain() if self.result_strategy else None,
        )


class StatusChange(WireModel):
    """PATCH /tasks/{taskId} body: move to `status` only if still in `expected_status`."""

    status: JobStatus
    expected_status: JobStatus
    result: Any = None
    agent_id: str | None = None
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        # `result` goes out whenever it was given (even null); agentId/error only with a value.
        body = super().to_wire()
        return {k: v for k, v in body.items() if v is not None or k == "result"}


class JobExecutionData(WireModel):
    """POST /execute body sent to an agent."""

    job_id: str
    distribution_id: str
    agent_id: str
    title: str
    description: str = ""
    category: str
    tags: list[str] = Field(default_factory=list)
    skill_level: int = 1
    payload: dict[str, Any] = Field(default_factory=dict)
    deadline: UtcDatetime

    def to_wire(self) -> dict[str, Any]:
        # Defaults are part of the message: the agent sees every field.
        return self.model_dump(mode="json", by_alias=True)


class AgentResult(WireModel):
    """An agent's answer to /execute (200) or to a poll of /tasks/{taskId}."""

    status: Literal["WORKING", "COMPLETED", "FAILED"]
    result: Any = None
    error: str | None = None
    score: float | None = Field(None, ge=0, le=1)


class Accepted(WireModel):
    """202 from /execute: the agent works on it; poll /tasks/{taskId}."""

    status: Literal["WORKING"] | None = None
    task_id: str = Field(min_length=1, max_length=200)
    poll_after_ms: int | None = Field(None, ge=0)


class HealthReport(WireModel):
    """GET /health; the contract requires no field, and a 200 means healthy."""

    status: Literal["ok", "degraded"] = "ok"
    load: float | None = Field(None, ge=0)
    capacity: int | None = Field(None, ge=0)


def summarize_errors(exc: ValidationError, limit: int = 5) -> str:
    """'title: field required; skillLevel: input should be ...' on one line."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "item"
        msg = err["msg"]
        if msg.startswith(where):  # the message names its own place (payload.a[2]: ...)
            parts.append(msg)
        else:
            parts.append(f"{where}: {msg[:1].lower()}{msg[1:]}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return storable_text(one_line("; ".join(parts)))
