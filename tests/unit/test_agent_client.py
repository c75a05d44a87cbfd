"""AgentClient against in-process fake agents (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from agent_dispatch.clients import (
    AgentBlocked,
    AgentCallError,
    AgentClient,
    AgentConnectionError,
    AgentEndpoint,
    AgentHTTPError,
    AgentInvalidAnswer,
    AgentReportedFailure,
    AgentTimeout,
    JobExecutionData,
    RetryPolicy,
)
from agent_dispatch.domain.statuses import FailureKind

TOKEN = "s3cret-agent-token"
BASE = "http://agents.test/agents/a1"
ENDPOINT = AgentEndpoint("a1", "Agent One", BASE, token=TOKEN)
DATA = JobExecutionData(
    job_id="job-1",
    distribution_id="dist-1",
    agent_id="a1",
    title="Summarise",
    category="text",
    payload={"q": 1},
    deadline=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
)
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)  # still a checkpoint, so deadlines can fire


class Script:
    """A fake agent: answers from a script (the last answer repeats) and records requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests]


def answer(body: Any, code: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(code, json=body, headers=headers)


def completed(result: Any = "done", score: float | None = 0.75) -> httpx.Response:
    return answer({"status": "COMPLETED", "result": result, "score": score})


def make(handler: Handler, sleep: FakeSleep | None = None, **kw: Any) -> AgentClient:
    return AgentClient(
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(attempts=2, base_delay=0.2, jitter=0.0),
        sleep=sleep or FakeSleep(),
        **kw,
    )


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def assert_hides_token(exc: BaseException) -> None:
    assert TOKEN not in str(exc) and TOKEN not in repr(exc)


@pytest.mark.asyncio
async def test_completed_answer_and_request_shape() -> None:
    fake = Script(completed(result={"text": "ok"}))
    async with make(fake) as client:
        reply = await client.execute(ENDPOINT, DATA, deadline=soon())
    assert (reply.result, reply.score, reply.attempts) == ({"text": "ok"}, 0.75, 1)
    assert (reply.remote_task_id, reply.status_code) == (None, 200)
    [request] = fake.requests
    assert str(request.url) == "http://agents.test/agents/a1/execute"
    assert request.method == "POST"
    assert request.headers["Idempotency-Key"] == "dist-1:a1"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(request.content)
    assert body["jobId"] == "job-1" and body["distributionId"] == "dist-1"
    assert body["payload"] == {"q": 1} and body["skillLevel"] == 1
    assert dt.datetime.fromisoformat(body["deadline"]) == DATA.deadline


@pytest.mark.asyncio
async def test_base_url_with_trailing_slash_and_no_token() -> None:
    fake = Script(completed())
    async with make(fake) as client:
        await client.execute(AgentEndpoint("a1", "A", BASE + "/"), DATA, deadline=soon())
    assert str(fake.requests[0].url) == "http://agents.test/agents/a1/execute"
    assert "Authorization" not in fake.requests[0].headers


@pytest.mark.asyncio
async def test_failed_answer() -> None:
    fake = Script(answer({"status": "FAILED", "error": "model\noverloaded"}))
    async with make(fake) as client:
        with pytest.raises(AgentReportedFailure) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    exc = info.value
    assert (exc.kind, exc.error, exc.attempts, exc.status_code) == (
        FailureKind.AGENT_FAILED,
        "model\noverloaded",
        1,
        200,
    )
    assert str(exc) == "agent Agent One answered FAILED: model overloaded"


@pytest.mark.asyncio
async def test_error_status_is_not_retried() -> None:
    fake = Script(httpx.Response(500, text=f"trace with {TOKEN}"))
    async with make(fake) as client:
        with pytest.raises(AgentHTTPError) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert (info.value.kind, info.value.status_code, info.value.attempts) == (
        FailureKind.HTTP_ERROR,
        500,
        1,
    )
    assert str(info.value) == "agent Agent One answered 500 to /execute"
    assert len(fake.requests) == 1
    assert_hides_token(info.value)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, text="certainly! here is"), "answer is not JSON"),
        (httpx.Response(200, content=b"\xff\xfe"), "answer is not JSON"),
        (answer({"status": "DONE"}), "wrong shape: status:"),
        (answer([1, 2]), "wrong shape: item: input should be a valid dictionary"),
        (answer({"status": "COMPLETED", "score": 7}), "wrong shape: score:"),
        (answer({"status": "WORKING"}), "wrong shape: taskId: field required"),
        (answer({"status": "WORKING"}, 202), "wrong shape: taskId: field required"),
    ],
)
async def test_invalid_answers(response: httpx.Response, message: str) -> None:
    async with make(Script(response)) as client:
        with pytest.raises(AgentInvalidAnswer, match=message) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert info.value.kind is FailureKind.INVALID_ANSWER
    assert info.value.attempts == 1


@pytest.mark.asyncio
async def test_accepted_then_polls_until_completed() -> None:
    fake = Script(
        answer({"status": "WORKING", "taskId": "t/1", "pollAfterMs": 250}, 202),
        answer({"status": "WORKING"}),
        httpx.Response(503, headers={"Retry-After": "1"}),
        httpx.ConnectError("dropped"),
        completed(result=42, score=None),
    )
    sleep = FakeSleep()
    seen: list[str] = []
    guarded: list[str] = []

    async def on_accepted(task_id: str) -> None:
        seen.append(task_id)
        assert len(fake.requests) == 1  # told before the first poll

    async def guard(url: str) -> None:
        guarded.append(url)

    async with make(fake, sleep, address_guard=guard) as client:
        reply = await client.execute(ENDPOINT, DATA, deadline=soon(), on_accepted=on_accepted)
    assert (reply.result, reply.score, reply.attempts) == (42, None, 1)
    assert (reply.remote_task_id, reply.status_code) == ("t/1", 200)
    assert seen == ["t/1"]
    assert fake.paths == ["POST /agents/a1/execute"] + ["GET /agents/a1/tasks/t%2F1"] * 4
    assert {r.headers["Idempotency-Key"] for r in fake.requests} == {"dist-1:a1"}
    assert sleep.calls == [0.25, 0.25, 1.0, 0.25]  # the 503's Retry-After is honoured once
    assert guarded == [str(r.url) for r in fake.requests]


@pytest.mark.asyncio
async def test_working_on_200_with_task_id_is_polled_and_interval_capped() -> None:
    fake = Script(answer({"status": "WORKING", "taskId": "t1", "pollAfterMs": 60_000}), completed())
    sleep = FakeSleep()
    async with make(fake, sleep) as client:
        reply = await client.execute(ENDPOINT, DATA, deadline=soon(30))
    assert reply.remote_task_id == "t1"
    assert sleep.calls == [5.0]


@pytest.mark.asyncio
async def test_poll_failure_answers() -> None:
    fake = Script(answer({"taskId": "t1"}, 202), answer({"status": "FAILED"}))
    sleep = FakeSleep()
    async with make(fake, sleep) as client:
        with pytest.raises(AgentReportedFailure) as failed:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert (failed.value.error, failed.value.remote_task_id) == ("", "t1")
    assert sleep.calls == [0.5]  # default poll interval
    fake = Script(answer({"taskId": "t1"}, 202), httpx.Response(404))
    async with make(fake) as client:
        with pytest.raises(AgentHTTPError, match="answered 404 to a poll") as gone:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert (gone.value.status_code, gone.value.remote_task_id) == (404, "t1")


@pytest.mark.asyncio
async def test_429_then_ok_keeps_the_idempotency_key() -> None:
    fake = Script(httpx.Response(429, headers={"Retry-After": "2"}), completed())
    sleep = FakeSleep()
    async with make(fake, sleep) as client:
        reply = await client.execute(ENDPOINT, DATA, deadline=soon())
    assert reply.attempts == 2
    assert sleep.calls == [2.0]
    keys = [r.headers["Idempotency-Key"] for r in fake.requests]
    assert keys == ["dist-1:a1", "dist-1:a1"]
    assert fake.requests[0].content == fake.requests[1].content


@pytest.mark.asyncio
async def test_retries_spent() -> None:
    fake = Script(httpx.Response(503))
    sleep = FakeSleep()
    async with make(fake, sleep) as client:
        with pytest.raises(AgentHTTPError) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert (info.value.attempts, info.value.status_code) == (3, 503)
    assert str(info.value) == "agent Agent One answered 503 after 3 attempts"
    assert sleep.calls == [0.2, 0.4]
    assert len(fake.requests) == 3


@pytest.mark.asyncio
async def test_connection_errors_spent() -> None:
    fake = Script(httpx.ConnectError("refused"))
    async with make(fake) as client:
        with pytest.raises(AgentConnectionError) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert (info.value.kind, info.value.attempts) == (FailureKind.CONNECTION, 3)
    assert str(info.value) == "agent Agent One unreachable (ConnectError)"


@pytest.mark.asyncio
async def test_retry_after_past_the_deadline_gives_up_at_once() -> None:
    fake = Script(httpx.Response(429, headers={"Retry-After": "30"}), completed())
    sleep = FakeSleep()
    async with make(fake, sleep) as client:
        with pytest.raises(AgentHTTPError) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon(2))
    assert (info.value.status_code, info.value.attempts) == (429, 1)
    assert sleep.calls == []


async def endless(consumed: list[int], chunk: bytes) -> AsyncIterator[bytes]:
    # "Forever" for the client; bounded here so a broken cap fails the test, not the machine.
    for _ in range(1000):
        consumed.append(len(chunk))
        yield chunk


@pytest.mark.asyncio
async def test_oversize_by_content_length_reads_nothing() -> None:
    consumed: list[int] = []
    big = httpx.Response(
        200, headers={"Content-Length": str(10**9)}, content=endless(consumed, b"x" * 1024)
    )
    async with make(Script(big), max_response_bytes=1024 * 1024) as client:
        with pytest.raises(AgentInvalidAnswer, match="answer larger than 1048576 bytes"):
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert consumed == []


@pytest.mark.asyncio
async def test_oversize_by_streaming_stops_reading() -> None:
    consumed: list[int] = []
    chunk = b"x" * 65536
    big = httpx.Response(200, content=endless(consumed, chunk))
    assert "Content-Length" not in big.headers
    async with make(Script(big), max_response_bytes=1024 * 1024) as client:
        with pytest.raises(AgentInvalidAnswer, match="answer larger than 1048576 bytes") as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert len(consumed) == 17  # 16 chunks fill the cap exactly; the 17th passes it
    assert info.value.status_code == 200


@pytest.mark.asyncio
async def test_deadline_while_the_agent_sleeps() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return completed()

    started = time.monotonic()
    async with make(slow) as client:
        with pytest.raises(AgentTimeout) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon(0.2))
    elapsed = time.monotonic() - started
    assert 0.15 < elapsed < 1.0
    assert (info.value.kind, info.value.attempts) == (FailureKind.TIMEOUT, 1)
    assert str(info.value) == "agent Agent One gave no final answer in time"


@pytest.mark.asyncio
async def test_deadline_stops_a_slow_drip() -> None:
    async def drip() -> AsyncIterator[bytes]:
        yield b'{"status": "COMPLETED", "result": "'
        while True:
            await asyncio.sleep(0.05)  # each chunk beats any per-chunk read timeout
            yield b"."

    started = time.monotonic()
    async with make(Script(httpx.Response(200, content=drip()))) as client:
        with pytest.raises(AgentTimeout):
            await client.execute(ENDPOINT, DATA, deadline=soon(0.3))
    assert time.monotonic() - started < 1.0


@pytest.mark.asyncio
async def test_deadline_while_polling_keeps_the_task_id() -> None:
    fake = Script(answer({"taskId": "t1", "pollAfterMs": 50}, 202), answer({"status": "WORKING"}))
    async with AgentClient(transport=httpx.MockTransport(fake)) as client:  # real sleep
        with pytest.raises(AgentTimeout) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon(0.3))
    assert info.value.remote_task_id == "t1"
    assert 3 <= len(fake.requests) <= 8


@pytest.mark.asyncio
async def test_deadline_already_past_sends_nothing() -> None:
    fake = Script(completed())
    async with make(fake) as client:
        with pytest.raises(AgentTimeout) as info:
            await client.execute(ENDPOINT, DATA, deadline=time.monotonic() - 1)
    assert info.value.attempts == 0
    assert fake.requests == []


@pytest.mark.asyncio
async def test_redirect_is_not_followed() -> None:
    fake = Script(httpx.Response(302, headers={"Location": "http://169.254.169.254/"}))
    async with make(fake) as client:
        with pytest.raises(AgentHTTPError, match="redirects are not followed") as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert info.value.status_code == 302
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_address_guard_blocks_before_any_request() -> None:
    fake = Script(completed())
    guarded: list[str] = []

    async def guard(url: str) -> None:
        guarded.append(url)
        raise AgentBlocked("agent address refused: 10.0.0.1 is private")

    async with make(fake, address_guard=guard) as client:
        with pytest.raises(AgentBlocked) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
        assert (
            await client.cancel(
                ENDPOINT, job_id="job-1", distribution_id="dist-1", remote_task_id=None
            )
            is False
        )
    assert (info.value.kind, info.value.attempts) == (FailureKind.BLOCKED, 0)
    assert guarded == [f"{BASE}/execute", f"{BASE}/cancel"]
    assert fake.requests == []


@pytest.mark.asyncio
async def test_cancel_paths_and_answers() -> None:
    fake = Script(httpx.Response(200), httpx.Response(404), httpx.Response(405))
    async with make(fake) as client:
        results = [
            await client.cancel(
                ENDPOINT, job_id="job-1", distribution_id="dist-1", remote_task_id=r
            )
            for r in ("t/1", None, "t2")
        ]
    assert results == [True, False, False]
    assert fake.paths == [
        "POST /agents/a1/tasks/t%2F1/cancel",
        "POST /agents/a1/cancel",
        "POST /agents/a1/tasks/t2/cancel",
    ]
    assert fake.requests[0].content == b""
    assert json.loads(fake.requests[1].content) == {"jobId": "job-1", "distributionId": "dist-1"}
    for request in fake.requests:
        assert request.headers["Idempotency-Key"] == "dist-1:a1"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.asyncio
async def test_cancel_never_raises() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    kwargs: dict[str, Any] = {"job_id": "j", "distribution_id": "d", "remote_task_id": "t"}
    async with make(Script(httpx.ConnectError("refused"))) as client:
        assert await client.cancel(ENDPOINT, **kwargs) is False
    async with make(Script(httpx.Response(500))) as client:
        assert await client.cancel(ENDPOINT, **kwargs) is False
    started = time.monotonic()
    async with make(hang) as client:
        assert await client.cancel(ENDPOINT, **kwargs, timeout=0.1) is False
    assert time.monotonic() - started < 1.0


@pytest.mark.asyncio
async def test_cancellation_propagates() -> None:
    entered = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.sleep(30)
        return completed()

    async with make(hang) as client:
        for call in (
            client.execute(ENDPOINT, DATA, deadline=soon()),
            client.cancel(ENDPOINT, job_id="j", distribution_id="d", remote_task_id=None),
        ):
            entered.clear()
            task = asyncio.create_task(call)  # type: ignore[arg-type]
            await entered.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


@pytest.mark.asyncio
async def test_health() -> None:
    fake = Script(
        answer({"status": "degraded", "load": 0.5, "capacity": 2, "extra": 1}),
        answer({}),
        httpx.Response(500),
        answer({"status": "down"}),
        httpx.ConnectError("refused"),
    )
    async with make(fake) as client:
        report = await client.health(ENDPOINT)
        assert (report.status, report.load, report.capacity) == ("degraded", 0.5, 2)
        assert (await client.health(ENDPOINT)).status == "ok"
        with pytest.raises(AgentHTTPError, match="answered 500 to /health"):
            await client.health(ENDPOINT)
        with pytest.raises(AgentInvalidAnswer):
            await client.health(ENDPOINT)
        with pytest.raises(AgentConnectionError):
            await client.health(ENDPOINT)
    assert fake.paths == ["GET /agents/a1/health"] * 5
    assert "Idempotency-Key" not in fake.requests[0].headers


@pytest.mark.asyncio
async def test_health_timeout() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return answer({})

    async with make(hang) as client:
        with pytest.raises(AgentTimeout, match="gave no health report in time"):
            await client.health(ENDPOINT, timeout=0.1)


@pytest.mark.asyncio
async def test_token_never_shows() -> None:
    assert TOKEN not in repr(ENDPOINT)
    assert repr(ENDPOINT) == (
        f"AgentEndpoint(agent_id='a1', name='Agent One', base_url='{BASE}', protocol='http-json')"
    )
    client = make(Script(completed()))
    assert TOKEN not in repr(client)
    await client.aclose()
    errors: list[AgentCallError] = []
    for response in (httpx.Response(401), answer({"status": "FAILED", "error": "no"})):
        async with make(Script(response)) as client:
            with pytest.raises(AgentCallError) as info:
                await client.execute(ENDPOINT, DATA, deadline=soon())
            errors.append(info.value)
    for exc in errors:
        assert_hides_token(exc)


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["http://", "ftp://agents.test/a1", "not a url", "http://[::1/x"])
async def test_unusable_url_fails_without_a_request(url: str) -> None:
    fake = Script(completed())
    async with make(fake) as client:
        with pytest.raises(AgentConnectionError, match="agent A has an unusable URL") as info:
            await client.execute(AgentEndpoint("a1", "A", url), DATA, deadline=soon())
    assert info.value.attempts == 0
    assert fake.requests == []
