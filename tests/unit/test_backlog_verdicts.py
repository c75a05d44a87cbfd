"""Which waiting jobs no agent can ever serve, whatever capacity and circuits do."""

from __future__ import annotations

import dataclasses

from agent_dispatch.domain.backlog import never_servable, unservable
from agent_dispatch.domain.model import AgentProfile, JobSpec

LEGAL = JobSpec(queue_task_id="t1", title="t", category="legal", tags=("en",), skill_level=2)


def agent(name: str = "a", **fields: object) -> AgentProfile:
    base = AgentProfile(
        id=name, name=name, url="http://x", categories=("legal",), tags=("en",), skill_level=3
    )
    return base._replace(**fields)  # type: ignore[arg-type]


def test_an_agent_that_only_lacks_capacity_or_a_closed_circuit_could_serve() -> None:
    busy = agent(max_concurrency=1, in_flight=1)
    tripped = agent(circuit="open")
    trial_running = agent(circuit="half-open", in_flight=1)
    for a in (busy, tripped, trial_running):
        assert not never_servable(LEGAL, [a])
    assert unservable([("t1", LEGAL)], lambda _category: ([busy, tripped], 0)) == {}


def test_rules_only_an_agent_row_change_can_lift_make_a_job_never_servable() -> None:
    for a in (
        agent(categories=("code",)),
        agent(tags=()),
        agent(skill_level=1),
        agent(active=False),
        agent(healthy=False),
        agent(protocol="grpc"),
    ):
        assert never_servable(LEGAL, [a]), a
    assert never_servable(LEGAL, [])
    assert not never_servable(LEGAL, [agent(categories=("code",)), agent("b")])


def test_the_reason_is_the_planning_summary_naming_each_agent() -> None:
    coder = agent("coder", categories=("code",))
    reasons = unservable([("t1", LEGAL)], lambda _category: ([coder], 0))
    assert reasons == {"t1": "no eligible agent (coder: category 'legal' not in ['code'])"}
    assert unservable([("t1", LEGAL)], lambda _category: ([], 0)) == {"t1": "no eligible agent"}


def test_agents_outside_the_category_count_under_its_rule_unread() -> None:
    asked: list[str] = []

    def pool_for(category: str) -> tuple[list[AgentProfile], int]:
        asked.append(category)
        return [], 9_997

    reasons = unservable([("t1", LEGAL), ("t2", dataclasses.replace(LEGAL))], pool_for)
    assert reasons["t1"] == reasons["t2"] == "no eligible agent (by rule: 9997 category)"
    assert asked == ["legal"]  # one shape: judged once


def test_jobs_of_one_shape_share_a_verdict_and_a_workflow_parent_is_never_judged() -> None:
    other = dataclasses.replace(LEGAL, queue_task_id="t2")
    fits = dataclasses.replace(LEGAL, queue_task_id="t3", category="code", tags=())
    parent = dataclasses.replace(LEGAL, queue_task_id="t4", workflow="review")
    coder = agent("coder", categories=("code",))
    jobs = [("t1", LEGAL), ("t2", other), ("t3", fits), ("t4", parent)]
    reasons = unservable(jobs, lambda _category: ([coder], 0))
    assert set(reasons) == {"t1", "t2"}
    assert reasons["t1"] == reasons["t2"]
