"""Agents of a protocol this build cannot call are never chosen, and the reason says so."""

from agent_dispatch.domain.matching import match
from agent_dispatch.domain.model import AgentProfile, JobSpec


def test_agent_with_unsupported_protocol_is_excluded_with_reason() -> None:
    job = JobSpec(queue_task_id="t", title="t", category="c")
    a2a = AgentProfile(id="1", name="a2a-agent", url="https://x", categories=("c",), protocol="a2a")
    plain = AgentProfile(id="2", name="plain", url="https://y", categories=("c",))

    result = match(job, [a2a, plain], limit=3)

    assert [a.name for a in result.chosen] == ["plain"]
    excluded = next(d for d in result.decisions if d.agent_name == "a2a-agent")
    assert not excluded.eligible
    assert excluded.reason == "protocol 'a2a' has no client in this version"
