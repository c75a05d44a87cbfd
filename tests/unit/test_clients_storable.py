"""Both clients hold what they hand on to the storage rule: one bad item or answer fails alone."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agent_dispatch.clients import AgentClient, AgentInvalidAnswer, RemoteQueueClient, RetryPolicy
from agent_dispatch.domain.statuses import FailureKind
from agent_dispatch.domain.storable import MAX_DEPTH, text_problem
from tests.unit.test_agent_client import DATA, ENDPOINT, soon

NUL_REASON = "contains a NUL character (U+0000), which cannot be stored"


def task(task_id: str, **fields: Any) -> dict[str, Any]:
    base = {"id": task_id, "title": "t", "category": "c", "status": "OPEN"}
    return {**base, "createdAt": "2026-01-01T00:00:00Z", **fields}


async def listed(body: bytes) -> tuple[list[str], dict[str | None, str]]:
    """(ids of valid tasks, reason per rejected id) of one page served as `body`."""
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=body))
    async with RemoteQueueClient("http://q.test", "token", transport=transport) as client:
        page = await client.list_tasks()
    for item in page.rejected:
        assert text_problem(item.reason) is None, "a reason must itself be storable"
    return [t.id for t in page.valid], {r.task_id: r.reason for r in page.rejected}


def page_of(*items: dict[str, Any] | str) -> bytes:
    texts = [i if isinstance(i, str) else json.dumps(i) for i in items]
    return ('{"tasks":[' + ",".join(texts) + '],"nextCursor":null}').encode()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (task("bad", description="a\x00b"), f"description: {NUL_REASON}"),
        (task("bad", title="x\ud800"), "title: contains a lone surrogate (U+D800)"),
        (task("bad", tags=["ok", "n\x00"]), f"tags.1: {NUL_REASON}"),
        (task("bad", category="\udc80"), "category: contains a lone surrogate (U+DC80)"),
        (task("bad", payload={"a": ["\x00"]}), f"payload.a[0]: {NUL_REASON}"),
        (task("bad", payload={"\x00": 1}), f"payload: a key {NUL_REASON}"),
        (task("bad", payload={"x": float("nan")}), "payload.x: not a finite number (nan)"),
        (task("bad", timeoutMs=2**40), "timeoutMs: input should be less than or equal to"),
        (task("bad", expiresAt="0001-01-01T00:00:00+14:00"), "expiresAt: value error, out of"),
        (task("bad", skillLevel="high"), "skillLevel: input should be a valid integer"),
    ],
    ids=[
        "NUL in description",
        "lone surrogate in title",
        "NUL in a tag",
        "low surrogate in category",
        "NUL deep in payload",
        "NUL in a payload key",
        "NaN in payload",
        "timeout past int4",
        "instant before UTC year 1",
        "wrong type",
    ],
)
async def test_an_unstorable_item_is_rejected_alone_with_a_reason_naming_the_field(
    bad: dict[str, Any], reason: str
) -> None:
    valid, rejected = await listed(page_of(task("good-1"), bad, task("good-2")))

    assert valid == ["good-1", "good-2"]
    assert list(rejected) == ["bad"]
    assert rejected["bad"].startswith(reason)


async def test_poison_that_sinks_json_loads_is_rejected_alone() -> None:
    deep = json.dumps(task("deep", payload="@"))[:-1].replace(
        '"@"', '{"a":' * 3000 + "1" + "}" * 3000
    )
    huge = json.dumps(task("huge", payload="@")).replace('"@"', '{"n":' + "7" * 5000 + "}")
    inf = json.dumps(task("inf", payload="@")).replace('"@"', '{"n":1e400}')

    valid, rejected = await listed(page_of(task("a"), deep + "}", huge, inf, task("b")))

    assert valid == ["a", "b"]
    assert rejected == {
        "deep": f"payload: nested deeper than {MAX_DEPTH} levels",
        "huge": "payload: not decodable JSON (an integer of more than 4300 digits)",
        "inf": "payload.n: not a finite number (inf)",
    }


async def test_the_rejection_report_carries_the_reason() -> None:
    sent: list[Any] = []

    def queue(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            sent.append(json.loads(request.content))
            return httpx.Response(200, json=task("bad", status="FAILED"))
        return httpx.Response(200, content=page_of(task("bad", description="\x00")))

    async with RemoteQueueClient("http://q.test", "t", transport=httpx.MockTransport(queue)) as c:
        [item] = (await c.list_tasks()).rejected
        assert await c.reject(item)

    assert sent == [
        {"status": "FAILED", "expectedStatus": "OPEN", "error": f"description: {NUL_REASON}"}
    ]


def agent_answering(body: bytes | dict[str, Any]) -> AgentClient:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return AgentClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, content=content)),
        retry=RetryPolicy(attempts=1, base_delay=0.0, jitter=0.0),
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "COMPLETED", "result": {"text": "a\x00"}}, f"answer.result.text: {NUL_REASON}"),
        ({"status": "FAILED", "error": "boom\ud800"}, "answer.error: contains a lone surrogate"),
        (
            b'{"status":"COMPLETED","result":' + b"[" * 3000 + b"]" * 3000 + b"}",
            "answer nested too deep",
        ),
        (
            b'{"status":"COMPLETED","result":' + b"[" * 70 + b"]" * 70 + b"}",
            f"answer: nested deeper than {MAX_DEPTH} levels",
        ),
        ({"status": "COMPLETED", "result": float("inf")}, "answer.result: not a finite number"),
        ({"status": "WORKING", "taskId": "t\x00"}, f"answer.taskId: {NUL_REASON}"),
    ],
    ids=["NUL in result", "surrogate in error", "3000 deep", "70 deep", "infinite", "NUL id"],
)
async def test_an_unstorable_agent_answer_fails_that_agent_as_an_invalid_answer(
    body: bytes | dict[str, Any], message: str
) -> None:
    async with agent_answering(body) as client:
        with pytest.raises(AgentInvalidAnswer) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())

    assert info.value.kind is FailureKind.INVALID_ANSWER
    assert str(info.value).startswith(f"agent {ENDPOINT.name}: {message}")
    assert text_problem(str(info.value)) is None


async def test_an_answer_at_the_depth_limit_is_accepted() -> None:
    result: Any = 1
    for _ in range(MAX_DEPTH):
        result = [result]
    async with agent_answering({"status": "COMPLETED", "result": result}) as client:
        reply = await client.execute(ENDPOINT, DATA, deadline=soon())

    assert reply.result == result
