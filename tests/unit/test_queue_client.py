"""RemoteQueueClient against an in-process fake queue (httpx.MockTransport)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from agent_dispatch.clients import (
    IllegalQueueTransition,
    ListingWrites,
    QueueError,
    QueueProtocolError,
    QueueUnauthorized,
    QueueUnavailable,
    RejectedItem,
    RemoteQueueClient,
    RetryPolicy,
    TaskConflict,
    TaskNotFound,
    parse_retry_after,
)

TOKEN = "s3cret-queue-token"
BASE = "http://queue.test/api"
NO_JITTER = RetryPolicy(attempts=3, base_delay=0.2, max_delay=5.0, jitter=0.0)


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Recorder:
    """A fake queue: answers from a script and records every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


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


def ok(body: Any, code: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(code, json=body, headers=headers)


def make(
    recorder: Callable[[httpx.Request], httpx.Response], sleep: FakeSleep
) -> RemoteQueueClient:
    return RemoteQueueClient(
        BASE, TOKEN, transport=httpx.MockTransport(recorder), retry=NO_JITTER, sleep=sleep
    )


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.mark.asyncio
async def test_list_tasks_request_and_page(sleep: FakeSleep) -> None:
    fake = Recorder(ok({"tasks": [task(), task(id="t-2")], "nextCursor": "c2"}))
    async with make(fake, sleep) as client:
        page = await client.list_tasks(limit=20, cursor="c1")
    [request] = fake.requests
    assert request.method == "GET"
    assert request.url.path == "/api/tasks"
    assert dict(request.url.params) == {"status": "OPEN", "limit": "20", "cursor": "c1"}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert [t.id for t in page.valid] == ["t-1", "t-2"]
    assert page.rejected == []
    assert page.next_cursor == "c2"


@pytest.mark.asyncio
async def test_one_bad_item_never_stops_the_page(sleep: FakeSleep) -> None:
    items = [
        task(id="good-1"),
        {"id": "bad-1", "category": "c", "status": "OPEN", "skillLevel": 9, "createdAt": "someday"},
        {"title": "no id", "category": "c", "status": "OPEN", "createdAt": "2024-05-01T10:00:00Z"},
        task(id=123, title=""),
        task(id="x" * 129),
        "not an object",
        task(id="good-2", status="ARCHIVED", unknownField={"a": 1}),
    ]
    async with make(Recorder(ok({"tasks": items})), sleep) as client:
        page = await client.list_tasks()
    assert [t.id for t in page.valid] == ["good-1", "good-2"]
    assert page.valid[1].status == "ARCHIVED"
    assert [r.task_id for r in page.rejected] == ["bad-1", None, None, None, None]
    assert page.rejected[0].reason.startswith(
        "title: field required; skillLevel: input should be less than or equal to 5; createdAt:"
    )
    assert page.rejected[1].reason == "id: field required"
    assert page.rejected[4].reason.startswith("item: input should be a valid dictionary")
    assert page.next_cursor is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>oops</html>"),
        httpx.Response(200, json={"items": []}),
        httpx.Response(200, json={"tasks": {"a": 1}}),
        httpx.Response(200, json=[task()]),
        httpx.Response(200, json={"tasks": [], "nextCursor": 5}),
    ],
)
async def test_malformed_page_is_a_protocol_error(
    response: httpx.Response, sleep: FakeSleep
) -> None:
    async with make(Recorder(response), sleep) as client:
        with pytest.raises(QueueProtocolError):
            await client.list_tasks()


@pytest.mark.asyncio
async def test_401_is_not_retried_and_hides_the_token(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.Response(401, text=f"bad token {TOKEN}"))
    client = make(fake, sleep)
    with pytest.raises(QueueUnauthorized) as info:
        await client.list_tasks()
    assert len(fake.requests) == 1
    assert sleep.calls == []
    assert str(info.value) == "remote queue rejected the token (401)"
    for text in (str(info.value), repr(info.value), repr(client)):
        assert TOKEN not in text
    assert repr(client) == f"RemoteQueueClient(base_url={BASE!r})"
    await client.aclose()


@pytest.mark.asyncio
async def test_429_honours_retry_after(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.Response(429, headers={"Retry-After": "7"}), ok({"tasks": []}))
    async with make(fake, sleep) as client:
        page = await client.list_tasks()
    assert page.valid == []
    assert len(fake.requests) == 2
    assert sleep.calls == [7.0]


@pytest.mark.asyncio
async def test_retry_after_is_capped(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.Response(503, headers={"Retry-After": "3600"}), ok({"tasks": []}))
    async with make(fake, sleep) as client:
        await client.list_tasks()
    assert sleep.calls == [30.0]


@pytest.mark.asyncio
async def test_503_then_ok_backs_off(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.Response(503), httpx.Response(503), ok({"tasks": [task()]}))
    async with make(fake, sleep) as client:
        page = await client.list_tasks()
    assert [t.id for t in page.valid] == ["t-1"]
    assert sleep.calls == [0.2, 0.4]


@pytest.mark.asyncio
async def test_timeouts_retried_then_unavailable(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.ReadTimeout("slow"))
    async with make(fake, sleep) as client:
        with pytest.raises(QueueUnavailable) as info:
            await client.list_tasks()
    assert len(fake.requests) == 4
    assert sleep.calls == [0.2, 0.4, 0.8]
    assert info.value.reason == "remote queue unavailable after 4 attempts: timed out (ReadTimeout)"


@pytest.mark.asyncio
async def test_503_spent_reason(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.Response(503))
    async with make(fake, sleep) as client:
        with pytest.raises(QueueUnavailable) as info:
            await client.get_task("t-1")
    assert str(info.value) == "remote queue unavailable after 4 attempts: 503 Service Unavailable"
    assert len(fake.requests) == 4


@pytest.mark.asyncio
async def test_connect_errors_spent(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.ConnectError("refused"))
    async with make(fake, sleep) as client:
        with pytest.raises(QueueUnavailable, match=r"connection failed \(ConnectError\)"):
            await client.list_tasks()


@pytest.mark.asyncio
async def test_unexpected_status_is_a_queue_error_without_retry(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.Response(500))
    async with make(fake, sleep) as client:
        with pytest.raises(QueueError) as info:
            await client.list_tasks()
    assert type(info.value) is QueueError
    assert str(info.value) == "remote queue answered 500 to GET /tasks"
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_get_task(sleep: FakeSleep) -> None:
    fake = Recorder(ok(task(id="a/b c")), httpx.Response(404), ok({"id": "x"}))
    async with make(fake, sleep) as client:
        assert (await client.get_task("a/b c")).id == "a/b c"
        with pytest.raises(TaskNotFound):
            await client.get_task("gone")
        with pytest.raises(QueueProtocolError, match="invalid task: title: field required"):
            await client.get_task("x")
    assert fake.requests[0].url.raw_path == b"/api/tasks/a%2Fb%20c"


@pytest.mark.asyncio
async def test_take_sends_conditional_patch(sleep: FakeSleep) -> None:
    fake = Recorder(ok(task(id="a/b", status="DISTRIBUTED")))
    async with make(fake, sleep) as client:
        assert await client.take("a/b") is True
    [request] = fake.requests
    assert request.method == "PATCH"
    assert request.url.raw_path == b"/api/tasks/a%2Fb"
    assert fake.bodies() == [{"status": "DISTRIBUTED", "expectedStatus": "OPEN"}]


@pytest.mark.asyncio
async def test_writes_that_take_a_task_off_the_open_listing_are_counted_while_under_way(
    sleep: FakeSleep,
) -> None:
    # What the drain needs to know its own takes shifted offset cursors (services/drain.py).
    seen_in_flight: list[int] = []
    writes = ListingWrites()

    def queue(request: httpx.Request) -> httpx.Response:
        seen_in_flight.append(writes.in_flight)
        status = json.loads(request.content)["status"]
        return ok({"currentStatus": "CANCELLED"}, 409) if status == "FAILED" else ok(task())

    client = RemoteQueueClient(
        BASE, TOKEN, transport=httpx.MockTransport(queue), sleep=sleep, listing_writes=writes
    )
    async with client:
        await client.take("t-1")  # OPEN -> DISTRIBUTED
        await client.change_status("t-1", "IN_PROGRESS", "DISTRIBUTED")  # not on the listing
        await client.reject(RejectedItem("t-2", "bad", None))  # OPEN -> FAILED, refused (409)

    assert seen_in_flight == [1, 0, 1]
    assert (writes.started, writes.in_flight) == (2, 0)  # a refused write counts: it was sent
    await writes.settled()  # nothing under way: returns at once


@pytest.mark.asyncio
async def test_take_409_means_another_consumer_has_it(sleep: FakeSleep) -> None:
    # Even when currentStatus is the status we asked for: on a first try that is someone else.
    fake = Recorder(ok({"currentStatus": "DISTRIBUTED"}, 409))
    async with make(fake, sleep) as client:
        assert await client.take("t-1") is False
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_change_status_409_carries_current_status(sleep: FakeSleep) -> None:
    fake = Recorder(ok({"currentStatus": "CANCELLED"}, 409), httpx.Response(409, text="nope"))
    async with make(fake, sleep) as client:
        with pytest.raises(TaskConflict) as info:
            await client.change_status("t-1", "IN_PROGRESS", "DISTRIBUTED")
        assert info.value.current_status == "CANCELLED"
        with pytest.raises(TaskConflict) as unknown:
            await client.change_status("t-1", "IN_PROGRESS", "DISTRIBUTED")
        assert unknown.value.current_status is None


@pytest.mark.asyncio
async def test_change_status_404_and_422(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.Response(404), httpx.Response(422))
    async with make(fake, sleep) as client:
        with pytest.raises(TaskNotFound):
            await client.change_status("t-1", "IN_PROGRESS", "DISTRIBUTED")
        with pytest.raises(IllegalQueueTransition) as info:
            await client.change_status("t-1", "COMPLETED", "OPEN")
    assert str(info.value) == "remote queue refused OPEN -> COMPLETED for task 't-1'"


@pytest.mark.asyncio
async def test_change_status_body_and_answer(sleep: FakeSleep) -> None:
    fake = Recorder(ok(task(status="COMPLETED", result=None)), httpx.Response(204))
    async with make(fake, sleep) as client:
        done = await client.change_status(
            "t-1", "COMPLETED", "IN_PROGRESS", result=None, agent_id="a1"
        )
        assert done is not None and done.status == "COMPLETED"
        assert (
            await client.change_status("t-1", "FAILED", "IN_PROGRESS", error="all failed") is None
        )
    assert fake.bodies() == [
        {"status": "COMPLETED", "expectedStatus": "IN_PROGRESS", "result": None, "agentId": "a1"},
        {"status": "FAILED", "expectedStatus": "IN_PROGRESS", "error": "all failed"},
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("first", [httpx.ReadTimeout("lost"), httpx.Response(503)])
async def test_retried_patch_whose_first_try_went_through(
    first: httpx.Response | Exception, sleep: FakeSleep
) -> None:
    fake = Recorder(first, ok({"currentStatus": "DISTRIBUTED"}, 409))
    async with make(fake, sleep) as client:
        assert await client.take("t-1") is True
    assert len(fake.requests) == 2
    assert fake.bodies()[0] == fake.bodies()[1]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "first",
    [httpx.ConnectError("refused"), httpx.Response(429)],
    ids=["connect-error", "429"],
)
async def test_retried_patch_after_a_try_that_never_reached_the_queue(
    first: httpx.Response | Exception, sleep: FakeSleep
) -> None:
    # These tries were never processed: the 409 is another consumer's win.
    fake = Recorder(first, ok({"currentStatus": "DISTRIBUTED"}, 409))
    async with make(fake, sleep) as client:
        assert await client.take("t-1") is False


@pytest.mark.asyncio
async def test_retried_patch_409_with_other_status_is_a_conflict(sleep: FakeSleep) -> None:
    fake = Recorder(httpx.ReadTimeout("lost"), ok({"currentStatus": "CANCELLED"}, 409))
    async with make(fake, sleep) as client:
        with pytest.raises(TaskConflict) as info:
            await client.change_status("t-1", "IN_PROGRESS", "DISTRIBUTED")
    assert info.value.current_status == "CANCELLED"


@pytest.mark.asyncio
async def test_reject(sleep: FakeSleep) -> None:
    fake = Recorder(ok(task(status="FAILED")), httpx.Response(409), httpx.Response(404))
    item = RejectedItem("bad-1", "title: field required")
    async with make(fake, sleep) as client:
        assert await client.reject(item) is True
        assert await client.reject(item) is False
        assert await client.reject(item) is False
        assert await client.reject(RejectedItem(None, "id: field required")) is False
    assert len(fake.requests) == 3
    assert fake.bodies()[0] == {
        "status": "FAILED",
        "expectedStatus": "OPEN",
        "error": "title: field required",
    }


@pytest.mark.asyncio
async def test_context_manager_closes(sleep: FakeSleep) -> None:
    async with make(Recorder(ok({"tasks": []})), sleep) as client:
        pass
    with pytest.raises(RuntimeError):
        await client.list_tasks()


@pytest.mark.asyncio
async def test_limit_is_checked_locally(sleep: FakeSleep) -> None:
    fake = Recorder(ok({"tasks": []}))
    async with make(fake, sleep) as client:
        for limit in (0, 501):
            with pytest.raises(ValueError):
                await client.list_tasks(limit=limit)
    assert fake.requests == []


def test_retry_policy_delay() -> None:
    assert [NO_JITTER.delay(n) for n in (1, 2, 3, 6, 7)] == [0.2, 0.4, 0.8, 5.0, 5.0]
    assert NO_JITTER.delay(1, retry_after=12) == 12
    assert NO_JITTER.delay(1, retry_after=999) == 30.0
    jittered = RetryPolicy(base_delay=1.0, jitter=0.5)
    values = {jittered.delay(1) for _ in range(50)}
    assert all(0.5 <= v <= 1.5 for v in values) and len(values) > 1
    with pytest.raises(ValueError):
        RetryPolicy(attempts=-1)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


def test_parse_retry_after() -> None:
    now = dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 01 May 2024 10:00:20 GMT", now=now) == 20.0
    assert parse_retry_after("Wed, 01 May 2024 09:00:00 GMT", now=now) == 0.0
    for bad in (None, "", "-1", "soon", "nan", "inf"):
        assert parse_retry_after(bad) is None
