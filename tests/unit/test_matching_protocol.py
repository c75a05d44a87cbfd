"""Agents of a protocol this build cannot call are never chosen, and the reason says so;
A2A agents and http-json agents are matched alike."""

from agent_dispatch.domain.matching import match
from agent_dispatch.domain.model import AgentProfile, JobSpec


def test_agent_with_unsupported_protocol_is_excluded_with_reason() -> None:
    job = JobSpec(queue_task_id="t", title="t", category="c")
    grpc = AgentProfile(
        id="1", name="grpc-agent", url="https://x", categories=("c",), protocol="grpc"
    )
    plain = AgentProfile(id="2", name="plain", url="https://y", categories=("c",))

    result = match(job, [grpc, plain], limit=3)

    assert [a.name for a in result.chosen] == ["plain"]
    excluded = next(d for d in result.decisions if d.agent_name == "grpc-agent")
    assert not excluded.eligible
    assert excluded.reason == "protocol 'grpc' has no client in this version"


def test_a2a_and_http_json_agents_are_chosen_side_by_side() -> None:
    job = JobSpec(queue_task_id="t", title="t", category="c")
    a2a = AgentProfile(id="1", name="a2a-agent", url="https://x", categories=("c",), protocol="a2a")
    plain = AgentProfile(id="2", name="plain", url="https://y", categories=("c",))

    result = match(job, [a2a, plain], limit=3)

    assert sorted(a.name for a in result.chosen) == ["a2a-agent", "plain"]
