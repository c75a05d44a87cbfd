"""The SSRF guard dials the address it checked: DNS rebinding and TLS names (real sockets)."""

from __future__ import annotations

import datetime as dt
import ssl
import time
from collections.abc import Iterator

import pytest
import trustme

from agent_dispatch.clients import (
    AgentBlocked,
    AgentClient,
    AgentConnectionError,
    AgentEndpoint,
    JobExecutionData,
    NetGuard,
    RetryPolicy,
)
from agent_dispatch.clients.agent import DEFAULT_LIMITS
from agent_dispatch.domain.statuses import FailureKind
from tests.support.net_standins import OTHER_PUBLIC, PUBLIC, Answers, StandInNetwork
from tests.support.net_standins import loopback_server as serve

DATA = JobExecutionData(
    job_id="job-1",
    distribution_id="dist-1",
    agent_id="a1",
    title="t",
    category="general",
    deadline=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
)
ONE_TRY = RetryPolicy(attempts=0)


def endpoint(base_url: str) -> AgentEndpoint:
    return AgentEndpoint("a1", "Agent One", base_url)


async def execute(client: AgentClient, base_url: str) -> object:
    async with client:
        reply = await client.execute(endpoint(base_url), DATA, deadline=time.monotonic() + 5)
    return reply.result


async def test_the_connection_dials_the_address_its_own_single_resolution_checked() -> None:
    # A rebinding resolver: public to the first question, loopback to any later one. The
    # URL names "localhost", so an unpinned connection would also reach the private server.
    with serve() as (private_port, private), serve() as (public_port, public):
        resolver = Answers([PUBLIC], ["127.0.0.1"])
        network = StandInNetwork({PUBLIC: public_port})
        transport = NetGuard(resolver, network).transport(limits=DEFAULT_LIMITS)
        url = f"http://localhost:{private_port}/agents/a1"

        result = await execute(AgentClient(transport=transport, retry=ONE_TRY), url)

    assert result == "from /agents/a1/execute"
    assert resolver.calls == [("localhost", private_port)]  # checked and dialled: one answer
    assert network.dialled == [(PUBLIC, private_port)]
    assert private.requests == []
    # The Host header still names the URL's host, not the address dialled.
    assert public.requests == [("POST", "/agents/a1/execute", f"localhost:{private_port}")]


async def test_a_name_rebound_to_loopback_after_the_early_check_is_refused_unsent() -> None:
    # As the runtime wires it: the early check sees the public answer, the connection then
    # gets loopback, checks it and refuses; the loopback agent hears nothing.
    with serve() as (private_port, private):
        resolver = Answers([PUBLIC], ["127.0.0.1"])
        network = StandInNetwork()
        client = AgentClient(net_guard=NetGuard(resolver, network), retry=ONE_TRY)

        with pytest.raises(AgentBlocked, match=r"loopback address 127\.0\.0\.1") as info:
            await execute(client, f"http://localhost:{private_port}/agents/a1")

    assert info.value.kind is FailureKind.BLOCKED
    assert len(resolver.calls) == 2
    assert network.dialled == []
    assert private.requests == []


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([PUBLIC, "127.0.0.1"], "loopback"),
        ([PUBLIC, "169.254.169.254"], "link-local"),
        ([PUBLIC, "::ffff:10.0.0.1"], "private"),
    ],
)
async def test_one_non_public_address_in_the_answer_refuses_the_whole_name(
    answer: list[str], problem: str
) -> None:
    network = StandInNetwork()
    transport = NetGuard(Answers(answer), network).transport(limits=DEFAULT_LIMITS)
    with pytest.raises(AgentBlocked, match=problem):
        await execute(AgentClient(transport=transport, retry=ONE_TRY), "http://agent.test/a1")
    assert network.dialled == []


async def test_checked_addresses_are_tried_in_order_when_one_does_not_connect() -> None:
    with serve() as (port, seen):
        network = StandInNetwork({PUBLIC: port})  # OTHER_PUBLIC is unreachable
        guard = NetGuard(Answers([OTHER_PUBLIC, PUBLIC]), network)
        url = f"http://agent.test:{port}/a1"

        result = await execute(AgentClient(net_guard=guard, retry=ONE_TRY), url)

    assert result == "from /a1/execute"
    assert network.dialled == [(OTHER_PUBLIC, port), (PUBLIC, port)]
    assert len(seen.requests) == 1


async def test_an_unresolvable_name_is_refused_not_retried() -> None:
    def no_such_host(host: str, port: int) -> list[object]:
        raise OSError("Name or service not known")

    guard = NetGuard(no_such_host, StandInNetwork())  # type: ignore[arg-type]
    client = AgentClient(transport=guard.transport(limits=DEFAULT_LIMITS))
    with pytest.raises(AgentBlocked, match="cannot resolve"):
        await execute(client, "http://nowhere.test/a1")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def server_tls(ca: trustme.CA, request: pytest.FixtureRequest) -> Iterator[ssl.SSLContext]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*request.param).configure_cert(ctx)
    yield ctx


@pytest.mark.parametrize("server_tls", [("agent.example",)], indirect=True)
async def test_https_sni_host_header_and_certificate_use_the_name_not_the_ip(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    with serve(server_tls) as (port, seen):
        network = StandInNetwork({PUBLIC: port})
        transport = NetGuard(Answers([PUBLIC]), network).transport(
            limits=DEFAULT_LIMITS, verify=client_tls
        )
        url = f"https://agent.example:{port}/agents/a1"

        result = await execute(AgentClient(transport=transport, retry=ONE_TRY), url)

    assert result == "from /agents/a1/execute"
    assert network.dialled == [(PUBLIC, port)]
    assert seen.sni == ["agent.example"]
    assert seen.requests == [("POST", "/agents/a1/execute", f"agent.example:{port}")]


# A certificate for another name, or for the dialled IP alone, must not satisfy the check.
@pytest.mark.parametrize("server_tls", [("other.example",), (PUBLIC,)], indirect=True)
async def test_https_certificate_not_naming_the_host_is_refused(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    with serve(server_tls) as (port, seen):
        network = StandInNetwork({PUBLIC: port})
        transport = NetGuard(Answers([PUBLIC]), network).transport(
            limits=DEFAULT_LIMITS, verify=client_tls
        )
        client = AgentClient(transport=transport, retry=ONE_TRY)

        with pytest.raises(AgentConnectionError):
            await execute(client, f"https://agent.example:{port}/agents/a1")

    assert seen.requests == []
