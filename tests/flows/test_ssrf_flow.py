"""The runtime's own SSRF guard in a real dispatch: private agents are blocked, never called.

Every other test runtime allows private networks (the simulated agents live on loopback), so
these are the tests that fail when the runtime stops building its guard.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Agent, Job, JobDistributionAgent
from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.net_standins import PUBLIC

pytestmark = [pytest.mark.flow]


def only_row(rt: Runtime, queue_task_id: str) -> tuple[Job, JobDistributionAgent]:
    with rt.uow() as uow:
        job = uow.jobs.find(queue_task_id)
        assert job is not None
        [row] = [r for d in job.distributions for r in d.agents]
        return job, row


async def test_a_loopback_agent_is_blocked_and_never_called(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    rt = make_runtime(agent_allow_private_networks=False)
    agent_id = add_agent("loopback", "fast")  # the farm's URL is http://127.0.0.1:<port>/...
    task = queue.add_task(title="t", category="general")

    await dispatch_flow(DispatchParams())

    job, row = only_row(rt, task["id"])
    assert (row.agent_id, row.status, row.failure_kind) == (agent_id, "FAILED", "blocked")
    assert "agent address refused" in (row.error or "")
    assert job.status == "FAILED"
    assert queue.task(task["id"])["status"] == "FAILED"
    assert farm.calls == []


async def test_an_agent_name_rebound_to_loopback_at_connect_time_is_never_called(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The system resolver answers "rebind.test" with a public address once, then loopback:
    # the runtime's early check sees the public one, so only the pinned connection can stop
    # the call. Without the pin, httpx would resolve again and reach the farm.
    real_getaddrinfo = socket.getaddrinfo
    answers = [PUBLIC]

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("rebind.test", b"rebind.test"):  # anyio asks with bytes
            return real_getaddrinfo(host, port, *args, **kwargs)
        ip = answers.pop(0) if answers else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    rt = make_runtime(agent_allow_private_networks=False, execution_retry_count=0)
    farm.add("rebound", "fast")
    url = farm.url_for("rebound").replace("127.0.0.1", "rebind.test")
    with rt.uow() as uow:
        uow.agents.add(Agent(name="rebound", url=url, categories=["general"]))
        uow.commit()
    task = queue.add_task(title="t", category="general")

    await dispatch_flow(DispatchParams())

    _, row = only_row(rt, task["id"])
    assert (row.status, row.failure_kind) == ("FAILED", "blocked")
    assert "loopback address 127.0.0.1" in (row.error or "")
    assert farm.calls == []
