"""Planning in batches decides for each job exactly what planning it alone decides, on both
dialects; a job that fails (its lease lost, a row that cannot be read) fails alone; plans asked
for together share one transaction; a bounded pool scores agents with room first and counts
the agents it did not score."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from agent_dispatch.db.agent_repository import AgentRepository
from agent_dispatch.db.engine import is_sqlite
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent, Job
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.lease import LeaseLost
from agent_dispatch.domain.lifecycle import PlanKind
from agent_dispatch.domain.matching import NOT_SCORED
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.posterior import Evidence
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services import planning
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.planning import Plan, plan_job, plan_jobs, why_not
from tests.conftest import make_settings
from tests.support.matching_tables import fleet, jobs
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")

Deps = Callable[..., TestDeps]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def make_deps(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deps]:
    """Deps on a fresh migrated database of either dialect; keywords override settings."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'plans.sqlite'}"
        migrating = TestDeps(make_settings(url))
        upgrade(migrating.engine)
        migrating.engine.dispose()
    else:
        url = request.getfixturevalue("database_url")
    made: list[TestDeps] = []

    def build(**overrides: Any) -> TestDeps:
        made.append(TestDeps(make_settings(url, ranking_seed=11, **overrides)))
        return made[-1]

    yield build
    for deps in made:
        await deps.aclose()
        deps.engine.dispose()


def seed_fleet(deps: TestDeps, size: int) -> None:
    """The matching tables' fleet (every rule crossed), with learned evidence in some
    categories (undecayed: the same at every plan) and some agents full or nearly so."""
    rng, now = random.Random(size), utcnow()
    with deps.uow() as uow:
        uow.session.add_all(Agent(**a) for a in fleet(rng, size, now))
        uow.session.flush()
        for i, a in enumerate(uow.agents.list()):
            a.in_flight = i % 4 if i % 3 else 0
            for category in a.categories[: i % 3]:
                uow.agents.save_evidence(category, {a.id: Evidence(i % 7, i % 3, 0.5, 2, 12, 80)})
        uow.commit()


def lease(deps: TestDeps, specs: list[JobSpec]) -> list[Claim]:
    with deps.uow() as uow:
        spec_of = {uow.jobs.intake(s): s for s in specs}
        leases = uow.jobs.claim_open([s.queue_task_id for s in specs], "w", 600, utcnow())
        uow.commit()
    return [Claim(le, le.job_id, spec_of[le.job_id], JobStatus.OPEN) for le in leases]


async def alone(deps: TestDeps, claims: list[Claim]) -> list[Plan | Exception]:
    return [(await plan_jobs(deps, [c]))[0] for c in claims]


@pytest.mark.parametrize(("size", "at_most"), [(12, None), (400, None), (400, 4)])
async def test_a_batch_plans_each_job_as_planning_it_alone_does(
    make_deps: Deps, size: int, at_most: int | None
) -> None:
    deps = make_deps(agents_scored_per_job=at_most, max_agents_per_job=2)
    seed_fleet(deps, size)
    claims = lease(deps, jobs(random.Random(3), 40))

    one_by_one = await alone(deps, claims)
    together = await plan_jobs(deps, claims)
    coalesced = await asyncio.gather(*(plan_job(deps, c) for c in claims))

    assert together == one_by_one
    assert list(coalesced) == one_by_one
    kinds = {p.kind for p in together if isinstance(p, Plan)}
    assert kinds == {PlanKind.DISPATCH, PlanKind.UNSERVED}  # not a degenerate table
    cut = [p for p in together if isinstance(p, Plan) and NOT_SCORED in p.exclusions]
    assert cut or at_most is None  # a bound of 4 cuts pools (and the batch must agree)


async def test_a_lost_lease_or_an_unreadable_job_fails_that_job_alone(make_deps: Deps) -> None:
    deps = make_deps()
    seed_fleet(deps, 40)
    specs = [JobSpec(queue_task_id=f"q{i}", title="t", category="text") for i in range(3)]
    kept, lost, broken = lease(deps, specs)
    with deps.uow() as uow:
        uow.jobs.release(lost.lease)
        uow.session.execute(
            update(Job).where(Job.id == broken.job_id).values(result_strategy={"type": "?"})
        )
        uow.commit()

    first, second, third = await plan_jobs(deps, [kept, lost, broken])

    assert isinstance(first, Plan) and first.kind is PlanKind.DISPATCH
    assert isinstance(second, LeaseLost)
    assert isinstance(third, ValueError)
    with pytest.raises(LeaseLost):  # plan_job raises what failed its job
        await plan_job(deps, lost)


async def test_planning_writes_nothing_and_the_take_notes_the_plans_summary(
    make_deps: Deps,
) -> None:
    deps = make_deps()
    seed_fleet(deps, 40)
    (claim,) = lease(deps, [JobSpec(queue_task_id="q", title="t", category="text")])
    with deps.uow() as uow:
        job = uow.jobs.get_leased(claim.lease)
        before = (job.match_summary, job.updated_at, job.attempts)

    plan = await plan_job(deps, claim)

    assert plan.kind is PlanKind.DISPATCH and plan.summary.startswith("chose ")
    with deps.uow() as uow:
        job = uow.jobs.get_leased(claim.lease)
        assert (job.match_summary, job.updated_at, job.attempts) == before
        uow.distributions.create(
            claim.lease, plan.decisions, utcnow(), None, plan.exclusions, plan.summary
        )
        assert (job.match_summary, job.attempts) == (plan.summary, 1)  # loaded: kept in step
        uow.commit()
    with deps.uow() as uow:
        job = uow.jobs.get_leased(claim.lease)
        assert (job.match_summary, job.attempts) == (plan.summary, 1)
        assert job.updated_at > before[1]


async def test_a_job_left_waiting_for_a_busy_agent_shows_why_at_once(make_deps: Deps) -> None:
    deps = make_deps()
    with deps.uow() as uow:
        uow.session.add(
            Agent(
                name="only",
                url="http://127.0.0.1:9/only",
                categories=["text"],
                max_concurrency=1,
                in_flight=1,
            )
        )
        uow.commit()
    (claim,) = lease(deps, [JobSpec(queue_task_id="q", title="t", category="text")])

    plan = await plan_job(deps, claim)

    assert plan.kind is PlanKind.UNSERVED and plan.busy == 1
    assert "at max concurrency (1/1)" in plan.summary
    with deps.uow() as uow:
        assert uow.jobs.get_leased(claim.lease).match_summary == plan.summary


async def test_a_batch_the_database_refuses_is_planned_again_job_by_job(
    make_deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = make_deps()
    seed_fleet(deps, 40)
    claims = lease(deps, jobs(random.Random(4), 6))
    expected = await alone(deps, claims)
    pools = AgentRepository.pools

    def refuse_many(self: Any, specs: list[Any], now: Any, at_most: Any) -> Any:
        if len(specs) > 1:
            raise RuntimeError("the database refused the batch")
        return pools(self, specs, now, at_most)

    monkeypatch.setattr(AgentRepository, "pools", refuse_many)

    assert await plan_jobs(deps, claims) == expected


async def test_plans_asked_for_together_share_a_transaction_per_batch_in_flight(
    make_deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = make_deps()
    seed_fleet(deps, 40)
    claims = lease(deps, jobs(random.Random(5), 24))
    batches: list[int] = []
    plan_batch = planning._plan_batch

    def counted(uow: Any, s: Any, batch: list[Claim]) -> Any:
        batches.append(len(batch))
        return plan_batch(uow, s, batch)

    monkeypatch.setattr(planning, "_plan_batch", counted)

    await asyncio.gather(*(plan_job(deps, c) for c in claims[:6]))
    await asyncio.gather(*(plan_job(deps, c) for c in claims[6:22]))
    for c in claims[22:24]:
        await plan_job(deps, c)

    # Six: one batch. Sixteen: on PostgreSQL two at once, split evenly; SQLite (one writer)
    # runs one batch at a time.
    sqlite = is_sqlite(deps.settings.effective_database_url)
    assert batches == [6, *([16] if sqlite else [8, 8]), 1, 1]


async def test_a_bounded_pool_scores_agents_with_room_first_and_counts_the_rest(
    make_deps: Deps,
) -> None:
    deps = make_deps(agents_scored_per_job=4, max_agents_per_job=2)
    with deps.uow() as uow:
        for i in range(30):  # the best reputations are the full ones
            uow.session.add(
                Agent(
                    name=f"a{i:02d}",
                    url=f"http://127.0.0.1:9/{i}",
                    categories=["text"],
                    max_concurrency=1,
                    reputation=1.0 - i / 100,
                    in_flight=1 if i < 20 else 0,
                )
            )
        uow.commit()
    (claim,) = lease(deps, [JobSpec(queue_task_id="q", title="t", category="text")])

    plan = await plan_job(deps, claim)

    assert plan.kind is PlanKind.DISPATCH
    chosen = [d.agent_name for d in plan.decisions if d.chosen]
    assert len(chosen) == 2 and all(name >= "a20" for name in chosen)
    assert plan.exclusions == {NOT_SCORED: 26}  # 30 admitted, the 4 best with room scored
    with deps.uow() as uow:
        uow.distributions.create(claim.lease, plan.decisions, utcnow(), None, plan.exclusions)
        uow.commit()
    with deps.uow() as uow:
        answer = why_not(uow, claim.job_id, "a29", utcnow())
    assert answer is not None and answer.kept is None and answer.not_scored == 26
    assert "26 admitted agents were not scored" in "\n".join(answer.lines())
