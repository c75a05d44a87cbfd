"""A2AClient's own handling of answers (httpx.MockTransport); real servers: tests/integration."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import httpx
import pytest

from agent_dispatch.clients.a2a import A2AClient, A2ARpcError
from agent_dispatch.clients.a2a_card import card_info, spoken_version
from agent_dispatch.clients.agent import AgentEndpoint
from agent_dispatch.clients.errors import (
    AgentConnectionError,
    AgentHTTPError,
    AgentInvalidAnswer,
    AgentTimeout,
)
from agent_dispatch.clients.retry import RetryPolicy
from agent_dispatch.clients.wire import JobExecutionData
from agent_dispatch.domain.statuses import FailureKind

TOKEN = "s3cret-a2a-token"
BASE = "http://agents.test/a1"
RPC = "http://agents.test/a1/rpc"
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


def card(version: str = "1.0", **extra: Any) -> dict[str, Any]:
    return {
        "name": "Agent One",
        "description": "does things",
        "version": "1",
        "supportedInterfaces": [
            {"url": RPC, "protocolBinding": "JSONRPC", "protocolVersion": version}
        ],
        "capabilities": {"streaming": True},
        "skills": [{"id": "sum", "name": "Sum", "description": "", "tags": ["text", " nlp "]}],
        **extra,
    }


def task(state: str, task_id: str = "t-1", **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "contextId": "dist-1:a1", "status": {"state": state}, **extra}


def rpc(result: Any = None, error: Any = None, rpc_id: Any = "x") -> httpx.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": rpc_id}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    return httpx.Response(200, json=body)


class Agent:
    """Serves `the_card` at the v1.0 path and answers JSON-RPC calls from a script."""

    def __init__(self, *answers: httpx.Response | Exception, the_card: Any = None) -> None:
        self.answers = list(answers)
        self.card = card() if the_card is None else the_card
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "GET":
            return httpx.Response(200, json=self.card)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def calls(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.method == "POST"]


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def make(agent: Agent, **kw: Any) -> A2AClient:
    return A2AClient(
        transport=httpx.MockTransport(agent),
        retry=RetryPolicy(attempts=2, base_delay=0.01, jitter=0.0),
        sleep=no_sleep,
        **kw,
    )


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


# Card reduction (pure)


def test_v03_card_layout_is_read() -> None:
    old = {
        "name": "Old",
        "description": "",
        "url": "http://agents.test/old/",
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
        "capabilities": {},
        "skills": [{"id": "s", "name": "S", "description": "", "tags": ["a", "a", "b"]}],
    }
    info = card_info(old, "http://agents.test/old/.well-known/agent.json")
    assert (info.rpc_url, info.protocol_version) == ("http://agents.test/old/", "0.3")
    assert info.tags == ("a", "b")


def test_v1_is_preferred_and_relative_urls_are_resolved() -> None:
    both = card(
        supportedInterfaces=[
            {"url": "/v03", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            {"url": "http://x.test/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
            {"url": "/v1", "protocolBinding": "jsonrpc", "protocolVersion": "1.0.1"},
        ]
    )
    info = card_info(both, "https://agents.test/a/.well-known/agent-card.json")
    assert (info.rpc_url, info.protocol_version) == ("https://agents.test/v1", "1.0")
    assert info.tags == ("text", "nlp") and info.streaming is True


@pytest.mark.parametrize(
    ("declared", "spoken"),
    [("1.0", "1.0"), ("1", "1.0"), ("1.2.0", "1.0"), ("", "0.3"), ("0.3.0", "0.3"),
     ("0.2.5", None), ("2.0", None), ("1.x", None)],
)  # fmt: skip
def test_spoken_version(declared: str, spoken: str | None) -> None:
    assert spoken_version(declared) == spoken


def test_card_with_ftp_rpc_url_is_refused() -> None:
    bad = card(
        supportedInterfaces=[
            {"url": "ftp://x.test/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ]
    )
    with pytest.raises(ValueError, match="no usable URL"):
        card_info(bad, "http://x.test/.well-known/agent-card.json")


# Requests


async def test_v1_request_shape_and_headers() -> None:
    agent = Agent(rpc({"task": task("TASK_STATE_COMPLETED")}))
    async with make(agent) as client:
        reply = await client.execute(ENDPOINT, DATA, deadline=soon())
    assert reply.result is None and reply.remote_task_id == "t-1"
    get, post = agent.requests
    assert str(get.url) == BASE + "/.well-known/agent-card.json"
    assert str(post.url) == RPC
    for request in (get, post):
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert post.headers["A2A-Version"] == "1.0"
    assert post.headers["Idempotency-Key"] == "dist-1:a1"
    [body] = agent.calls
    assert (body["jsonrpc"], body["method"]) == ("2.0", "SendMessage")
    params = body["params"]
    assert params["configuration"] == {"returnImmediately": True, "historyLength": 0}
    message = params["message"]
    assert (message["messageId"], message["contextId"], message["role"]) == (
        "dist-1:a1",
        "dist-1:a1",
        "ROLE_USER",
    )
    assert message["parts"][0] == {"text": "Summarise"}
    assert message["parts"][1]["data"]["jobId"] == "job-1"
    assert message["metadata"] == {"jobId": "job-1", "distributionId": "dist-1", "agentId": "a1"}


async def test_v03_request_shape_and_no_version_header() -> None:
    done = {"kind": "task", "id": "t-9", "contextId": "c", "status": {"state": "completed"}}
    agent = Agent(rpc(done), the_card=card("0.3"))
    async with make(agent) as client:
        reply = await client.execute(ENDPOINT, DATA, deadline=soon())
    assert reply.remote_task_id == "t-9"
    post = agent.requests[-1]
    assert "A2A-Version" not in post.headers
    [body] = agent.calls
    assert body["method"] == "message/send"
    assert body["params"]["configuration"] == {"blocking": False}
    assert body["params"]["message"]["role"] == "user"
    assert [p["kind"] for p in body["params"]["message"]["parts"]] == ["text", "data"]


async def test_polls_through_busy_and_dropped_answers_until_completed() -> None:
    artifact = {"artifactId": "a", "parts": [{"text": "one"}, {"data": {"n": 2, "x": 0.5}}]}
    agent = Agent(
        rpc({"task": task("TASK_STATE_SUBMITTED")}),
        rpc(task("TASK_STATE_WORKING")),
        httpx.Response(503, headers={"Retry-After": "0"}),
        httpx.ConnectError("dropped"),
        rpc(task("TASK_STATE_COMPLETED", artifacts=[artifact], metadata={"score": 0.4})),
    )
    accepted: list[str] = []

    async def on_accepted(task_id: str) -> None:
        accepted.append(task_id)

    async with make(agent) as client:
        reply = await client.execute(ENDPOINT, DATA, deadline=soon(), on_accepted=on_accepted)
    assert reply.result == ["one", {"n": 2, "x": 0.5}]  # whole numbers come back as int
    assert (reply.score, reply.attempts, accepted) == (0.4, 1, ["t-1"])
    assert [c["method"] for c in agent.calls] == ["SendMessage"] + ["GetTask"] * 4
    assert agent.calls[1]["params"] == {"id": "t-1", "historyLength": 0}


async def test_send_is_retried_on_503_with_the_same_message_id() -> None:
    agent = Agent(httpx.Response(503), rpc({"task": task("TASK_STATE_COMPLETED")}))
    async with make(agent) as client:
        reply = await client.execute(ENDPOINT, DATA, deadline=soon())
    assert reply.attempts == 2
    ids = [c["params"]["message"]["messageId"] for c in agent.calls]
    assert ids == ["dist-1:a1", "dist-1:a1"]


async def test_connection_errors_spend_the_retries() -> None:
    agent = Agent(httpx.ConnectError("refused"))
    async with make(agent) as client:
        with pytest.raises(AgentConnectionError) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert info.value.attempts == 3


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (httpx.Response(200, text="certainly!"), AgentInvalidAnswer, "answer is not JSON"),
        (httpx.Response(200, json=[1]), AgentInvalidAnswer, "wrong shape"),
        (httpx.Response(200, json={"jsonrpc": "1.0", "result": {}}), AgentInvalidAnswer,
         "wrong shape: jsonrpc"),
        (httpx.Response(200, json={"jsonrpc": "2.0", "id": 1}), AgentInvalidAnswer,
         "JSON-RPC answer has no result"),
        (rpc("a string"), AgentInvalidAnswer, "the result is not an object"),
        (rpc({}), AgentInvalidAnswer, "neither a task nor a message"),
        (rpc({"task": {"id": 7}}), AgentInvalidAnswer, "the result has the wrong shape"),
        (rpc({"task": task("TASK_STATE_UNSPECIFIED")}), AgentInvalidAnswer,
         "task in unknown state 0"),
        (rpc({"task": task("TASK_STATE_DREAMING")}), AgentInvalidAnswer, "unknown state 0"),
        (rpc(error={"code": -32603, "message": f"boom\nwith {TOKEN}"}), A2ARpcError,
         "answered JSON-RPC error -32603 to SendMessage: boom with"),
        (httpx.Response(500), AgentHTTPError, "answered 500 to SendMessage"),
        (httpx.Response(302, headers={"Location": "http://10.0.0.1/"}), AgentHTTPError,
         "redirects are not followed"),
    ],
)  # fmt: skip
async def test_answers_that_break_the_protocol(
    answer: httpx.Response, error: type[Exception], message: str
) -> None:
    async with make(Agent(answer)) as client:
        with pytest.raises(error, match=message) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert "\n" not in str(info.value)
    assert f"Bearer {TOKEN}" not in str(info.value)


async def test_rpc_error_keeps_its_code() -> None:
    agent = Agent(rpc(error={"code": -32009, "message": "Version not supported"}))
    async with make(agent) as client:
        with pytest.raises(A2ARpcError) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert (info.value.rpc_code, info.value.kind) == (-32009, FailureKind.HTTP_ERROR)


async def test_card_is_read_once_per_ttl() -> None:
    agent = Agent(rpc({"task": task("TASK_STATE_COMPLETED")}))
    async with make(agent) as client:
        for _ in range(3):
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert [r.method for r in agent.requests] == ["GET", "POST", "POST", "POST"]
    agent.requests.clear()
    async with make(agent, card_ttl=0) as client:
        for _ in range(2):
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert [r.method for r in agent.requests] == ["GET", "POST", "GET", "POST"]


async def test_deadline_bounds_a_hanging_agent() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=card())
        await asyncio.sleep(10)
        raise AssertionError("not reached")

    started = time.monotonic()
    async with A2AClient(transport=httpx.MockTransport(hang)) as client:
        with pytest.raises(AgentTimeout):
            await client.execute(ENDPOINT, DATA, deadline=soon(0.2))
    assert time.monotonic() - started < 1.0


async def test_cancel_answers() -> None:
    def cancel_with(answer: httpx.Response) -> Agent:
        return Agent(answer)

    async def cancel(agent: Agent) -> bool:
        async with make(agent) as client:
            return await client.cancel(
                ENDPOINT, job_id="job-1", distribution_id="dist-1", remote_task_id="t-1"
            )

    assert await cancel(cancel_with(rpc(task("TASK_STATE_CANCELED")))) is True
    assert await cancel(cancel_with(rpc(task("TASK_STATE_COMPLETED")))) is False
    assert await cancel(cancel_with(rpc(error={"code": -32002, "message": "no"}))) is False
    assert await cancel(cancel_with(httpx.Response(405))) is False
    assert await cancel(cancel_with(httpx.Response(200, text="?"))) is False
    agent = cancel_with(rpc(task("TASK_STATE_CANCELED")))
    await cancel(agent)
    assert agent.calls == [
        {
            "jsonrpc": "2.0",
            "id": agent.calls[0]["id"],
            "method": "CancelTask",
            "params": {"id": "t-1"},
        }
    ]
    assert agent.requests[-1].headers["Idempotency-Key"] == "dist-1:a1"


async def test_endpoint_repr_and_errors_hide_the_token() -> None:
    agent = Agent(httpx.Response(401, text=f"bad token {TOKEN}"))
    async with make(agent) as client:
        with pytest.raises(AgentHTTPError) as info:
            await client.execute(ENDPOINT, DATA, deadline=soon())
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
