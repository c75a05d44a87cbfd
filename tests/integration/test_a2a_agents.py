"""A2AClient against real A2A servers (a2a-sdk 1.3.0's own server parts, on loopback)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent_dispatch.clients.a2a import A2AClient, A2ATaskCanceled
from agent_dispatch.clients.a2a_card import AgentCardRefused
from agent_dispatch.clients.agent import AgentClient, AgentEndpoint, AgentReply
from agent_dispatch.clients.errors import (
    AgentBlocked,
    AgentCallError,
    AgentHTTPError,
    AgentInvalidAnswer,
    AgentReportedFailure,
    AgentTimeout,
)
from agent_dispatch.clients.netguard import check_url, make_address_guard
from agent_dispatch.clients.wire import JobExecutionData
from agent_dispatch.domain.netpolicy import UnsafeAddress
from agent_dispatch.domain.statuses import FailureKind
from agent_dispatch.simulators.a2a_agents import A2AAgentFarm
from agent_dispatch.simulators.agents import AgentFarm

V1_INTERFACE = {
    "url": "http://127.0.0.1:9/",
    "protocolBinding": "JSONRPC",
    "protocolVersion": "1.0",
}
GOOD_CARD: dict[str, Any] = {
    "name": "carded",
    "description": "d",
    "version": "1",
    "supportedInterfaces": [V1_INTERFACE],
    "capabilities": {},
    "skills": [],
}


@pytest.fixture(scope="module")
def farm() -> Iterator[A2AAgentFarm]:
    farm = A2AAgentFarm(
        {
            "fast": "fast",
            "failing": "failing",
            "rejecting": "rejecting",
            "asking": "input_required",
            "direct": "direct",
            "slow": "slow",
            "cancellable": "cancellable",
        }
    )
    farm.add("old", "fast", version="0.3", old_card_path=True)  # a v0.3 agent, agent.json
    farm.add("big", "fast", size=50_000)
    farm.add("not-json", "fast", card="{name: oops")
    farm.add("a-list", "fast", card=[GOOD_CARD])
    farm.add("no-name", "fast", card={**GOOD_CARD, "name": " "})
    farm.add("bad-types", "fast", card={**GOOD_CARD, "capabilities": {"streaming": "yes"}})
    grpc_only = [
        {"url": "http://127.0.0.1:9/", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
        {"url": "http://127.0.0.1:9/", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
    ]
    farm.add("grpc-only", "fast", card={**GOOD_CARD, "supportedInterfaces": grpc_only})
    too_old = [{**V1_INTERFACE, "protocolVersion": "0.2.5"}]
    farm.add("too-old", "fast", card={**GOOD_CARD, "supportedInterfaces": too_old})
    # A card that sends calls to the cloud metadata address: the guard must stop them.
    metadata = [{**V1_INTERFACE, "url": "http://169.254.169.254/rpc"}]
    farm.add("elsewhere", "fast", card={**GOOD_CARD, "supportedInterfaces": metadata})
    with farm.serve():
        yield farm


def job(agent: str, dist: str = "dist-1") -> JobExecutionData:
    return JobExecutionData(
        job_id="job-1",
        distribution_id=dist,
        agent_id=agent,
        title="Summarise",
        description="the quarterly report",
        category="text",
        tags=["summary"],
        payload={"pages": 3},
        deadline=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )


def endpoint(farm: A2AAgentFarm, name: str) -> AgentEndpoint:
    return AgentEndpoint(name, name, farm.url_for(name))


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


# Cards


async def test_card_of_a_v1_agent(farm: A2AAgentFarm) -> None:
    async with A2AClient() as client:
        info = await client.fetch_card(farm.url_for("fast"))
    assert (info.name, info.protocol_version) == ("fast", "1.0")
    assert info.description == "simulated A2A agent (fast)"
    assert info.tags == ("summary", "nlp", "review")
    assert info.skill_ids == info.default_categories == ("text", "code")
    assert info.rpc_url == farm.url_for("fast") + "/"
    assert info.card_url == farm.url_for("fast") + "/.well-known/agent-card.json"
    assert (info.streaming, info.push_notifications) == (False, False)


async def test_card_of_an_older_agent_at_agent_json(farm: A2AAgentFarm) -> None:
    async with A2AClient() as client:
        info = await client.fetch_card(farm.url_for("old"))
    assert (info.name, info.protocol_version) == ("old", "0.3")
    assert info.card_url.endswith("/.well-known/agent.json")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("not-json", "card refused: not JSON"),
        ("a-list", "card refused: the card is not a JSON object"),
        ("no-name", "card refused: the card has no name"),
        ("bad-types", "card refused: the card is malformed: "),
        ("grpc-only", "card refused: the card offers no JSON-RPC binding (only GRPC, HTTP+JSON)"),
        ("too-old", "speaks A2A 0.2.5; this client speaks 1.0 and 0.3"),
    ],
)
async def test_unusable_cards_are_refused_in_one_line(
    farm: A2AAgentFarm, name: str, why: str
) -> None:
    async with A2AClient() as client:
        with pytest.raises(AgentCardRefused) as info:
            await client.fetch_card(farm.url_for(name), name=name)
        assert why in str(info.value)
        assert "\n" not in str(info.value) and len(str(info.value)) <= 300
        assert info.value.kind is FailureKind.INVALID_ANSWER
        # A call to such an agent fails the same way, as an invalid answer.
        with pytest.raises(AgentCardRefused):
            await client.execute(endpoint(farm, name), job(name), deadline=soon())


async def test_no_card_at_either_path(farm: A2AAgentFarm) -> None:
    async with A2AClient() as client:
        with pytest.raises(AgentHTTPError, match="answered 404 to its agent card") as info:
            await client.fetch_card(f"{farm.base_url}/agents/nobody", name="nobody")
    assert info.value.status_code == 404


async def test_health_reads_the_card(farm: A2AAgentFarm) -> None:
    async with A2AClient() as client:
        report = await client.health(endpoint(farm, "fast"))
        assert report.status == "ok"
        with pytest.raises(AgentCardRefused):
            await client.health(endpoint(farm, "grpc-only"))
        with pytest.raises(AgentHTTPError):
            await client.health(AgentEndpoint("x", "x", f"{farm.base_url}/agents/nobody"))


# Dispatch


async def test_fast_agent_completes_with_its_artifact(farm: A2AAgentFarm) -> None:
    accepted: list[str] = []

    async def on_accepted(task_id: str) -> None:
        accepted.append(task_id)

    async with A2AClient() as client:
        reply = await client.execute(
            endpoint(farm, "fast"), job("fast"), deadline=soon(), on_accepted=on_accepted
        )
    assert reply.result == {"agent": "fast", "jobId": "job-1", "summary": "done"}
    assert (reply.score, reply.attempts, reply.status_code) == (0.8, 1, 200)
    assert reply.remote_task_id == accepted[0]  # not blocking: the task id came first
    [seen] = [m for m in farm.messages if m.agent == "fast"]
    # The message and context ids carry the contract's Idempotency-Key.
    assert (seen.message_id, seen.context_id) == ("dist-1:fast", "dist-1:fast")
    assert seen.task_id == reply.remote_task_id
    assert "Summarise" in seen.text and "the quarterly report" in seen.text
    [data] = seen.data
    assert data["jobId"] == "job-1" and data["payload"] == {"pages": 3.0}


async def test_older_agent_is_called_with_the_v03_method_names(farm: A2AAgentFarm) -> None:
    async with A2AClient() as client:
        reply = await client.execute(endpoint(farm, "old"), job("old"), deadline=soon())
    assert reply.result == {"agent": "old", "jobId": "job-1", "summary": "done"}
    assert reply.score == 0.8


async def test_the_version_header_decides_which_names_the_sdk_server_takes(
    farm: A2AAgentFarm,
) -> None:
    """The interop fact the client is built on, checked against a2a-sdk 1.3.0 itself."""
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    v1 = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    old_message = {"kind": "message", "messageId": "m2", "role": "user", "parts": [{"text": "hi"}]}
    v03 = {"jsonrpc": "2.0", "id": 2, "method": "message/send", "params": {"message": old_message}}
    url = farm.url_for("direct") + "/"
    async with httpx.AsyncClient() as http:
        without = (await http.post(url, json=v1)).json()
        with_header = (await http.post(url, json=v1, headers={"A2A-Version": "1.0"})).json()
        old_names = (await http.post(url, json=v03)).json()
        old_agent = (await http.post(farm.url_for("old") + "/", json=v03)).json()
    assert without["error"]["code"] == -32009  # version not supported: 0.3 assumed
    assert "result" in with_header
    assert old_names["error"]["code"] == -32601  # a 1.0-only server knows no v0.3 names
    assert "result" in old_agent  # a server with v0.3 compatibility takes them


async def test_direct_message_answer(farm: A2AAgentFarm) -> None:
    async with A2AClient() as client:
        reply = await client.execute(endpoint(farm, "direct"), job("direct"), deadline=soon())
    assert (reply.result, reply.remote_task_id, reply.score) == (
        "direct answered directly",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("failing", "failed: simulated A2A failure"),
        ("rejecting", "rejected: simulated A2A failure"),
        ("asking", "input-required: which language should I use?"),
    ],
)
async def test_unfinished_ends_are_failures(farm: A2AAgentFarm, name: str, error: str) -> None:
    async with A2AClient() as client:
        with pytest.raises(AgentReportedFailure) as info:
            await client.execute(endpoint(farm, name), job(name), deadline=soon())
    exc = info.value
    assert (exc.kind, exc.error, exc.attempts) == (FailureKind.AGENT_FAILED, error, 1)
    assert exc.remote_task_id  # the task id stays known, e.g. for a cancel
    assert str(exc) == f"agent {name} answered FAILED: {error}"


async def test_slow_agent_times_out_at_the_deadline(farm: A2AAgentFarm) -> None:
    started = time.monotonic()
    async with A2AClient() as client:
        with pytest.raises(AgentTimeout) as info:
            await client.execute(endpoint(farm, "slow"), job("slow", "d-slow"), deadline=soon(0.6))
    assert 0.5 < time.monotonic() - started < 1.5
    assert info.value.kind is FailureKind.TIMEOUT
    assert info.value.remote_task_id  # accepted: the caller can cancel it


async def test_cancel_reaches_a_cancellable_agent(farm: A2AAgentFarm) -> None:
    accepted = asyncio.Event()
    task_ids: list[str] = []

    async def on_accepted(task_id: str) -> None:
        task_ids.append(task_id)
        accepted.set()

    ep = endpoint(farm, "cancellable")
    async with A2AClient() as client:
        call = asyncio.create_task(
            client.execute(
                ep, job("cancellable", "d-c"), deadline=soon(10), on_accepted=on_accepted
            )
        )
        await asyncio.wait_for(accepted.wait(), 5)
        confirmed = await client.cancel(
            ep, job_id="job-1", distribution_id="d-c", remote_task_id=task_ids[0]
        )
        # Still polling, the call sees the task end as canceled.
        with pytest.raises(A2ATaskCanceled) as info:
            await asyncio.wait_for(call, 5)
    assert confirmed is True
    assert farm.cancels("cancellable") == task_ids
    assert info.value.kind is FailureKind.CANCELLED
    assert "canceled on request" in str(info.value)


async def test_an_agent_that_cannot_cancel_is_tolerated(farm: A2AAgentFarm) -> None:
    task_ids: list[str] = []

    async def on_accepted(task_id: str) -> None:
        task_ids.append(task_id)

    ep = endpoint(farm, "slow")
    async with A2AClient() as client:
        with pytest.raises(AgentTimeout):
            await client.execute(
                ep, job("slow", "d-s"), deadline=soon(0.4), on_accepted=on_accepted
            )
        confirmed = await client.cancel(
            ep, job_id="job-1", distribution_id="d-s", remote_task_id=task_ids[0]
        )
        # Nothing to cancel by: A2A cancels by task id only.
        nothing = await client.cancel(
            ep, job_id="job-1", distribution_id="d-s", remote_task_id=None
        )
    assert (confirmed, nothing) == (False, False)
    assert task_ids[0] in farm.cancels("slow")  # it was asked, and refused


# The same limits as http-json agents


async def test_size_cap_applies(farm: A2AAgentFarm) -> None:
    async with A2AClient(max_response_bytes=20_000) as client:
        with pytest.raises(AgentInvalidAnswer, match="larger than 20000 bytes") as info:
            await client.execute(endpoint(farm, "big"), job("big"), deadline=soon())
    assert info.value.kind is FailureKind.INVALID_ANSWER


async def test_ssrf_guard_refuses_loopback_agents(farm: A2AAgentFarm) -> None:
    async with A2AClient(address_guard=make_address_guard()) as client:
        with pytest.raises(AgentBlocked, match="loopback"):
            await client.fetch_card(farm.url_for("fast"))
        with pytest.raises(AgentBlocked):
            await client.execute(endpoint(farm, "fast"), job("fast", "d-g"), deadline=soon())
        with pytest.raises(AgentBlocked):
            await client.health(endpoint(farm, "fast"))
    assert not [m for m in farm.messages if m.context_id == "d-g:fast"]


async def test_ssrf_guard_checks_the_url_the_card_names(farm: A2AAgentFarm) -> None:
    """The card is on an allowed host; the JSON-RPC URL it names is not: no call goes there."""
    checked: list[str] = []
    assert farm.base_url is not None
    allowed = httpx.URL(farm.base_url)

    async def guard(url: str) -> None:
        checked.append(url)
        if httpx.URL(url).host == allowed.host and httpx.URL(url).port == allowed.port:
            return
        try:
            check_url(url)  # literal address: no DNS
        except UnsafeAddress as exc:
            raise AgentBlocked(f"agent address refused: {exc}") from None

    async with A2AClient(address_guard=guard) as client:
        info = await client.fetch_card(farm.url_for("elsewhere"))
        assert info.rpc_url == "http://169.254.169.254/rpc"
        with pytest.raises(AgentBlocked, match=r"169\.254\.169\.254") as blocked:
            await client.execute(endpoint(farm, "elsewhere"), job("elsewhere"), deadline=soon())
    assert checked[-1] == "http://169.254.169.254/rpc"
    assert blocked.value.kind is FailureKind.BLOCKED


# Fan-out over both protocols


async def test_one_job_fans_out_to_a2a_and_http_json_agents(farm: A2AAgentFarm) -> None:
    """Clients picked by protocol, one interface: the first completed answer wins, the
    losers (one of each protocol) are cancelled, and both kinds of cancel arrive."""
    http_farm = AgentFarm({"h-fast": "fast:delay=0.05", "h-slow": "slow"})
    agents = {
        "fast": ("a2a", endpoint(farm, "fast")),
        "cancellable": ("a2a", endpoint(farm, "cancellable")),
        "h-fast": ("http-json", None),
        "h-slow": ("http-json", None),
    }
    with http_farm.serve():
        for name in ("h-fast", "h-slow"):
            agents[name] = ("http-json", AgentEndpoint(name, name, http_farm.url_for(name)))
        async with A2AClient() as a2a, AgentClient() as plain:
            clients: dict[str, Any] = {"a2a": a2a, "http-json": plain}
            remote: dict[str, str] = {}

            async def run(name: str) -> tuple[str, AgentReply]:
                protocol, ep = agents[name]
                assert ep is not None

                async def on_accepted(task_id: str) -> None:
                    remote[name] = task_id

                reply = await clients[protocol].execute(
                    ep, job(name, "d-fan"), deadline=soon(10), on_accepted=on_accepted
                )
                return name, reply

            calls = {name: asyncio.create_task(run(name)) for name in agents}
            done, _ = await asyncio.wait(calls.values(), return_when=asyncio.FIRST_COMPLETED)
            winner, reply = next(iter(done)).result()
            await asyncio.sleep(0.3)  # let the slow ones be accepted
            losers = [n for n in ("cancellable", "h-slow") if not calls[n].done()]
            for name in losers:
                protocol, ep = agents[name]
                assert ep is not None
                # Stop waiting first, as the race does: an agent may answer its pending call
                # (FAILED: cancelled) as soon as the cancel reaches it.
                calls[name].cancel()
                await clients[protocol].cancel(
                    ep, job_id="job-1", distribution_id="d-fan", remote_task_id=remote.get(name)
                )
            results = await asyncio.gather(*calls.values(), return_exceptions=True)
        http_cancels = http_farm.cancels
    assert winner in ("fast", "h-fast")
    assert reply.result["jobId"] == "job-1"
    assert sorted(losers) == ["cancellable", "h-slow"]
    assert remote["cancellable"] in farm.cancels("cancellable")
    assert [c.distribution_id for c in http_cancels if c.agent == "h-slow"] == ["d-fan"]
    completed = [r for r in results if isinstance(r, tuple)]
    assert {name for name, _ in completed} == {"fast", "h-fast"}
    assert not [r for r in results if isinstance(r, AgentCallError)]
