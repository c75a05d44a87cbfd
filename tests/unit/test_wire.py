"""Wire models: aliases, bounds, defaults and serialization of both contracts."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from agent_dispatch.clients.wire import (
    MAX_PAYLOAD_BYTES,
    Accepted,
    AgentResult,
    HealthReport,
    JobExecutionData,
    QueueTask,
    StatusChange,
    summarize_errors,
)
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus


def task(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "t-1",
        "title": "Summarise",
        "category": "text",
        "status": "OPEN",
        "createdAt": "2024-05-01T10:00:00Z",
    }
    raw.update(overrides)
    return raw


def test_queue_task_defaults_and_aliases() -> None:
    t = QueueTask.model_validate(task())
    assert (t.description, t.tags, t.skill_level, t.payload) == ("", [], 1, {})
    assert (t.max_agents, t.timeout_ms, t.expires_at, t.result, t.error) == (None,) * 5
    assert t.created_at == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    full = QueueTask.model_validate(
        task(
            skillLevel=5,
            maxAgents=10,
            timeoutMs=100,
            tags=["a"],
            expiresAt="2024-05-02T00:00:00+02:00",
        )
    )
    assert (full.skill_level, full.max_agents, full.timeout_ms, full.tags) == (5, 10, 100, ["a"])
    assert full.expires_at == dt.datetime(2024, 5, 1, 22, tzinfo=dt.UTC)
    # python names work too (populate_by_name)
    by_name = QueueTask(
        id="t", title="x", category="c", status="OPEN", created_at=t.created_at, skill_level=3
    )
    assert by_name.skill_level == 3


def test_naive_datetimes_are_read_as_utc() -> None:
    t = QueueTask.model_validate(
        task(createdAt="2024-05-01T10:00:00", expiresAt="2024-05-01T12:00:00")
    )
    assert t.created_at.tzinfo is dt.UTC and t.created_at.hour == 10
    assert t.expires_at == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def test_unknown_fields_ignored_and_unknown_status_kept() -> None:
    t = QueueTask.model_validate(task(status="ARCHIVED", owner="someone", nested={"x": 1}))
    assert t.status == "ARCHIVED"
    assert t.job_status is None
    assert "owner" not in t.model_dump()
    assert QueueTask.model_validate(task(status="IN_PROGRESS")).job_status is JobStatus.IN_PROGRESS


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", ""),
        ("id", "x" * 129),
        ("title", ""),
        ("title", "x" * 501),
        ("description", "x" * 20001),
        ("category", ""),
        ("category", "x" * 101),
        ("tags", ["x"] * 51),
        ("tags", [""]),
        ("tags", ["x" * 101]),
        ("skillLevel", 0),
        ("skillLevel", 6),
        ("maxAgents", 0),
        ("maxAgents", 11),
        ("timeoutMs", 99),
        ("createdAt", "yesterday"),
        ("payload", [1, 2]),
    ],
)
def test_queue_task_bounds(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        QueueTask.model_validate(task(**{field: value}))
    assert info.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize("missing", ["id", "title", "category", "status", "createdAt"])
def test_queue_task_required_fields(missing: str) -> None:
    raw = task()
    del raw[missing]
    with pytest.raises(ValidationError) as info:
        QueueTask.model_validate(raw)
    assert [e["loc"] for e in info.value.errors()] == [(missing,)]


def test_payload_limit_is_one_mebibyte_of_json() -> None:
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")))
    at_limit = {"k": "x" * (MAX_PAYLOAD_BYTES - overhead)}
    assert QueueTask.model_validate(task(payload=at_limit)).payload == at_limit
    with pytest.raises(ValidationError, match="larger than 1048576 bytes"):
        QueueTask.model_validate(task(payload={"k": "x" * (MAX_PAYLOAD_BYTES - overhead + 1)}))


def test_to_job_spec() -> None:
    t = QueueTask.model_validate(
        task(tags=["a", "b"], skillLevel=2, payload={"q": 1}, maxAgents=3, timeoutMs=5000)
    )
    assert t.to_job_spec() == JobSpec(
        queue_task_id="t-1",
        title="Summarise",
        category="text",
        tags=("a", "b"),
        skill_level=2,
        description="",
        payload={"q": 1},
        max_agents=3,
        timeout_ms=5000,
        expires_at=None,
    )


def test_status_change_serialization() -> None:
    minimal = StatusChange(status=JobStatus.DISTRIBUTED, expected_status=JobStatus.OPEN)
    assert minimal.to_wire() == {"status": "DISTRIBUTED", "expectedStatus": "OPEN"}
    done = StatusChange(
        status=JobStatus.COMPLETED,
        expected_status=JobStatus.IN_PROGRESS,
        result=None,
        agent_id="a1",
        error=None,
    )
    assert done.to_wire() == {
        "status": "COMPLETED",
        "expectedStatus": "IN_PROGRESS",
        "result": None,
        "agentId": "a1",
    }
    with pytest.raises(ValidationError):
        StatusChange(status="DONE", expected_status=JobStatus.OPEN)  # type: ignore[arg-type]


def test_job_execution_data_serialization() -> None:
    data = JobExecutionData(
        job_id="j",
        distribution_id="d",
        agent_id="a",
        title="T",
        category="c",
        deadline=dt.datetime(2024, 5, 1, 10, 0, 30),
    )
    wire = data.to_wire()
    assert set(wire) == {
        "jobId",
        "distributionId",
        "agentId",
        "title",
        "description",
        "category",
        "tags",
        "skillLevel",
        "payload",
        "deadline",
    }
    assert (wire["skillLevel"], wire["tags"], wire["payload"]) == (1, [], {})
    assert dt.datetime.fromisoformat(wire["deadline"]) == dt.datetime(
        2024, 5, 1, 10, 0, 30, tzinfo=dt.UTC
    )


def test_agent_answers() -> None:
    r = AgentResult.model_validate({"status": "COMPLETED", "result": [1], "score": 0.5, "x": 1})
    assert (r.status, r.result, r.score, r.error) == ("COMPLETED", [1], 0.5, None)
    for bad in ({"status": "DONE"}, {"status": "COMPLETED", "score": 1.5}, {}, [1]):
        with pytest.raises(ValidationError):
            AgentResult.model_validate(bad)
    a = Accepted.model_validate({"taskId": "t", "pollAfterMs": 0})
    assert (a.status, a.task_id, a.poll_after_ms) == (None, "t", 0)
    for bad in ({}, {"taskId": ""}, {"taskId": "x" * 201}, {"taskId": "t", "pollAfterMs": -1}):
        with pytest.raises(ValidationError):
            Accepted.model_validate(bad)
    assert HealthReport.model_validate({}).status == "ok"
    h = HealthReport.model_validate({"status": "degraded", "load": 0.9, "capacity": 0})
    assert (h.status, h.load, h.capacity) == ("degraded", 0.9, 0)
    for bad in ({"status": "down"}, {"load": -1}, {"capacity": -1}):
        with pytest.raises(ValidationError):
            HealthReport.model_validate(bad)


def test_summarize_errors_is_one_short_line() -> None:
    with pytest.raises(ValidationError) as info:
        QueueTask.model_validate(
            {
                "id": "t",
                "category": "c",
                "status": "OPEN",
                "skillLevel": 9,
                "createdAt": "2024-05-01T10:00:00Z",
            }
        )
    assert summarize_errors(info.value) == (
        "title: field required; skillLevel: input should be less than or equal to 5"
    )
    with pytest.raises(ValidationError) as many:
        QueueTask.model_validate({"tags": [""] * 10})
    text = summarize_errors(many.value)
    assert "\n" not in text
    assert text.endswith("and 10 more")  # 5 missing fields + 10 bad tags, 5 shown
    with pytest.raises(ValidationError) as not_a_dict:
        QueueTask.model_validate("oops")
    assert summarize_errors(not_a_dict.value).startswith("item: input should be a valid dictionary")
