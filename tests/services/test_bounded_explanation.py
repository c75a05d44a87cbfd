"""A job's stored explanation stays bounded at any fleet size, and `jobs show --why-not`
answers for any named agent by judging it against the job with the domain's rules."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from agent_dispatch.cli.main import main
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.lifecycle import PlanKind
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.planning import plan_job
from tests.support import reliability as rel
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")


def fleet(deps: TestDeps) -> None:
    for i in range(12):
        rel.add_agent(deps, f"fit-{i:02d}")
    rel.add_agent(deps, "asleep", active=False)
    rel.add_agent(deps, "sick", healthy=False)
    rel.add_agent(deps, "tripped", circuit_open_until=utcnow() + dt.timedelta(hours=1))
    rel.add_agent(deps, "novice", skill_level=1)
    for i in range(25):
        rel.add_agent(deps, f"coder-{i:02d}", categories=["code"])


async def planned(deps: TestDeps, qid: str, **spec: object) -> tuple[Claim, PlanKind]:
    job_id = rel.store(deps, qid, **spec)
    claim = Claim(
        rel.claim(deps, qid),
        job_id,
        JobSpec(queue_task_id=qid, title=f"job {qid}", category="general"),
        JobStatus.OPEN,
    )
    plan = await plan_job(deps, claim)
    with deps.uow() as uow:
        uow.distributions.create(claim.lease, plan.decisions, utcnow(), None, plan.exclusions)
        uow.commit()
    return claim, plan.kind


async def test_a_served_job_keeps_its_chosen_and_next_few_and_why_not_judges_any_agent(
    deps: TestDeps, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("agent_dispatch.bootstrap._runtime", deps)
    fleet(deps)
    _, kind = await planned(deps, "served", max_agents=2, skill_level=2)
    assert kind is PlanKind.DISPATCH

    assert main(["jobs", "show", "served", "--json"]) == 0
    (attempt,) = json.loads(capsys.readouterr().out)["distributions"]
    chosen = [d["agent_name"] for d in attempt["decisions"] if d["chosen"]]
    runners_up = [d["agent_name"] for d in attempt["decisions"] if not d["chosen"]]
    assert len(chosen) == 2 and len(runners_up) == 5  # of 12 that fit, among 41 agents
    assert all(name.startswith("fit-") for name in chosen + runners_up)

    left_out = next(f"fit-{i:02d}" for i in range(12) if f"fit-{i:02d}" not in chosen + runners_up)
    answers = {}
    for name in ("sick", "coder-07", "novice", "tripped", chosen[0], left_out):
        assert main(["jobs", "show", "served", "--why-not", name, "--json"]) == 0
        answers[name] = json.loads(capsys.readouterr().out)
    assert answers["sick"]["rule"] == "unhealthy"
    assert answers["coder-07"]["reason"] == "category 'general' not in ['code']"
    assert answers["novice"]["reason"] == "skill level 1 < required 2"
    assert answers["tripped"]["rule"] == "circuit open"
    assert answers[chosen[0]]["eligible"] and answers[chosen[0]]["kept"]["chosen"]
    ranked_lower = answers[left_out]  # fits, but ranked below the ones kept
    assert ranked_lower["eligible"] and ranked_lower["kept"] is None
    assert ranked_lower["attempt"] == 1

    assert main(["jobs", "show", "served", "--why-not", "coder-07"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "why not coder-07: excluded now by rule 'category': category 'general' not in ['code']",
        "  attempt 1: neither chosen nor among the next few it kept",
    ]
    assert main(["jobs", "show", "served", "--why-not", "nobody"]) == 1
    assert "no agent 'nobody'" in capsys.readouterr().err


async def test_a_job_nobody_serves_is_explained_by_counts_per_rule(
    deps: TestDeps,
) -> None:
    fleet(deps)
    qid = "unserved"
    job_id = rel.store(deps, qid, skill_level=5)
    claim = Claim(
        rel.claim(deps, qid),
        job_id,
        JobSpec(queue_task_id=qid, title="t", category="general", skill_level=5),
        JobStatus.OPEN,
    )

    plan = await plan_job(deps, claim)

    assert plan.kind is PlanKind.UNSERVED
    assert plan.exclusions == {
        "skill level": 13,  # the 12 that fit otherwise, and the novice
        "inactive": 1,
        "unhealthy": 1,
        "circuit open": 1,
        "category": 25,
    }
    assert len(plan.decisions) == 5
    assert plan.summary.endswith(
        "by rule: 25 category, 13 skill level, 1 circuit open, 1 inactive, 1 unhealthy)"
    )


async def test_a_small_fleet_is_still_explained_agent_by_agent(deps: TestDeps) -> None:
    rel.add_agent(deps, "writer")
    rel.add_agent(deps, "coder", categories=["code"])
    job_id = rel.store(deps, "small")
    spec = JobSpec(queue_task_id="small", title="job small", category="general")
    claim = Claim(rel.claim(deps, "small"), job_id, spec, JobStatus.OPEN)

    plan = await plan_job(deps, claim)

    why = {d.agent_name: (d.chosen, d.reason) for d in plan.decisions}
    assert why["writer"][0] is True
    assert why["coder"] == (False, "category 'general' not in ['code']")
    assert plan.exclusions == {"category": 1}
