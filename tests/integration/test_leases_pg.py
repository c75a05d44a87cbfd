"""Leases with fencing on real PostgreSQL: a worker that lost its lease cannot write anything,
not to the database and not to the queue."""

from __future__ import annotations

import concurrent.futures

import pytest
from sqlalchemy import event, select, update

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.distribution_repository import DistributionRepository
from agent_dispatch.db.models import Agent, Job, JobDistributionRecord
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.lease import LeaseLost
from agent_dispatch.domain.lifecycle import PlanKind
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import AgentRunStatus, JobStatus
from agent_dispatch.services.finishing import end_unstarted, finish_job
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.planning import Plan
from agent_dispatch.services.sweep import reconcile_stale_open, rescue_expired
from agent_dispatch.services.taking import Taken, take_job
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.reliability import add_agent, age_lease, claim, decisions, job, store

pytestmark = [pytest.mark.postgres]


def spec_of(qid: str) -> JobSpec:
    return JobSpec(queue_task_id=qid, title=f"job {qid}", category="general")


def test_same_queue_task_stored_from_many_sessions_at_once_is_one_job(rt: Runtime) -> None:
    def intake(_: int) -> str:
        with rt.uow() as uow:
            job_id = uow.jobs.intake(spec_of("task-dup"))
            uow.commit()
            return job_id

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(intake, range(16)))
    assert len(ids) == 1
    with rt.uow() as uow:
        assert len(uow.session.scalars(select(Job)).all()) == 1


def test_concurrent_claims_skip_locked_rows_and_live_leases(rt: Runtime) -> None:
    qids = [f"task-{i}" for i in range(10)]
    for q in qids:
        store(rt, q)
    with rt.uow() as first, rt.uow() as second:
        mine = first.jobs.claim_open(qids[:6], "w1", 300, utcnow())
        # Rows locked by an uncommitted claim are skipped, not waited for and not shared.
        theirs = second.jobs.claim_open(qids, "w2", 300, utcnow())
        first.commit()
        second.commit()
    assert len(mine) == 6 and len(theirs) == 4
    assert {ls.job_id for ls in mine}.isdisjoint(ls.job_id for ls in theirs)
    with rt.uow() as third:
        assert third.jobs.claim_open(qids, "w3", 300, utcnow()) == []  # all leases are live


def test_stale_worker_cannot_renew_move_release_or_reserve(rt: Runtime) -> None:
    aid = add_agent(rt, "a1")
    job_id = store(rt, "task-1")
    stale = claim(rt, "task-1", "w1")
    age_lease(rt, job_id)
    fresh = claim(rt, "task-1", "w2")  # the expired lease is free to take
    with rt.uow() as uow:
        with pytest.raises(LeaseLost):
            uow.jobs.renew(stale, utcnow(), 300)
        with pytest.raises(LeaseLost):
            uow.jobs.transition(stale, JobStatus.DISTRIBUTED, utcnow())
        with pytest.raises(LeaseLost):
            uow.distributions.create(stale, decisions((aid, "a1")), utcnow())
        uow.jobs.release(stale)  # a no-op: it must not free the new owner's lease
        uow.commit()
    assert job(rt, job_id).lease_token == fresh.token
    with rt.uow() as uow:
        dist = uow.distributions.create(fresh, decisions((aid, "a1")), utcnow())
        uow.commit()
    row = dist.assignments[0].row_id
    with rt.uow() as uow, pytest.raises(LeaseLost):
        uow.distributions.move_agent(stale, row, AgentRunStatus.WORKING)


def test_operator_cancel_revokes_the_lease_of_the_running_worker(rt: Runtime) -> None:
    job_id = store(rt, "task-1")
    lease = claim(rt, "task-1")
    with rt.uow() as uow:
        uow.jobs.transition_unleased(job_id, JobStatus.CANCELLED, utcnow())
        uow.commit()
    with rt.uow() as uow:
        assert not uow.jobs.holds(lease)
        with pytest.raises(LeaseLost):
            uow.jobs.transition(lease, JobStatus.DISTRIBUTED, utcnow())


def _taken_job(rt: Runtime, queue: SimulatedQueue) -> tuple[Taken, str, str]:
    """A job IN_PROGRESS under worker w1 whose one agent already answered COMPLETED."""
    aid = add_agent(rt, "a1")
    task = queue.add_task(title="t", category="general")
    queue.set_status(task["id"], "IN_PROGRESS")
    job_id = store(rt, task["id"])
    lease = claim(rt, task["id"], "w1")
    with rt.uow() as uow:
        dist = uow.distributions.create(lease, decisions((aid, "a1")), utcnow())
        uow.jobs.transition(lease, JobStatus.DISTRIBUTED, utcnow(), queue_status="DISTRIBUTED")
        uow.jobs.transition(lease, JobStatus.IN_PROGRESS, utcnow(), queue_status="IN_PROGRESS")
        row = dist.assignments[0].row_id
        uow.distributions.move_agent(lease, row, AgentRunStatus.WORKING, started_at=utcnow())
        uow.distributions.move_agent(
            lease,
            row,
            AgentRunStatus.COMPLETED,
            result={"ok": 1},
            finished_at=utcnow(),
            latency_ms=5.0,
        )
        uow.commit()
    claim_ = Claim(lease, job_id, spec_of(task["id"]), JobStatus.OPEN)
    return Taken(claim_, dist, JobStatus.IN_PROGRESS), row, aid


async def test_stale_worker_cannot_finish_update_stats_or_patch_the_queue(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    taken, row, aid = _taken_job(rt, queue)
    age_lease(rt, taken.claim.job_id)
    rescued = await rescue_expired(rt, 100)  # the sweep hands the job back
    assert [x.action for x in rescued.lines] == ["requeued"]
    with rt.uow() as uow:
        new_owner = uow.jobs.claim_rescued("w2", 300, utcnow(), 10)
        uow.commit()
    assert len(new_owner) == 1

    with pytest.raises(LeaseLost):
        await finish_job(rt, taken, row, utcnow())

    assert queue.patches == []
    after = job(rt, taken.claim.job_id)
    assert after.status == "IN_PROGRESS" and after.lease_owner == "w2"
    with rt.uow() as uow:
        agent = uow.session.get(Agent, aid)
        assert agent is not None and agent.runs == 0 and agent.wins == 0
        record = uow.session.get(JobDistributionRecord, taken.distribution.distribution_id)
        assert record is not None and record.status == "ABANDONED"


async def test_stale_worker_cannot_end_an_unstarted_job_on_the_queue(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    task = queue.add_task(title="t", category="general")
    job_id = store(rt, task["id"])
    stale = claim(rt, task["id"], "w1")
    age_lease(rt, job_id)
    claim(rt, task["id"], "w2")

    with pytest.raises(LeaseLost):
        await end_unstarted(
            rt,
            Claim(stale, job_id, spec_of(task["id"]), JobStatus.OPEN),
            JobStatus.EXPIRED,
            "too late",
        )

    assert queue.patches == []
    assert job(rt, job_id).status == "OPEN"
    assert queue.task(task["id"])["status"] == "OPEN"


async def test_lease_lost_between_reserving_agents_and_taking_means_no_take_on_the_queue(
    rt: Runtime, queue: SimulatedQueue, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    aid = add_agent(rt, "a1")
    task = queue.add_task(title="t", category="general")
    job_id = store(rt, task["id"])
    lease = claim(rt, task["id"], "w1")
    original = DistributionRepository.create

    def create_then_lose_lease(self: DistributionRepository, *args: object, **kw: object):  # type: ignore[no-untyped-def]
        made = original(self, *args, **kw)  # type: ignore[arg-type]

        @event.listens_for(self.session, "after_commit", once=True)
        def steal(_session: object) -> None:  # another worker takes over right after
            with rt.engine.begin() as conn:
                conn.execute(update(Job).where(Job.id == job_id).values(lease_token="thief"))

        return made

    monkeypatch.setattr(DistributionRepository, "create", create_then_lose_lease)
    plan = Plan(PlanKind.DISPATCH, tuple(decisions((aid, "a1"))))
    with pytest.raises(LeaseLost):
        await take_job(rt, Claim(lease, job_id, spec_of(task["id"]), JobStatus.OPEN), plan, None)
    assert queue.patches == []
    assert queue.task(task["id"])["status"] == "OPEN"


async def test_queue_error_during_take_leaves_the_job_for_the_sweep_not_released(
    rt: Runtime, queue: SimulatedQueue, prefect_harness: None
) -> None:
    from agent_dispatch.clients.errors import QueueUnavailable

    aid = add_agent(rt, "a1")
    task = queue.add_task(title="t", category="general")
    job_id = store(rt, task["id"])
    lease = claim(rt, task["id"], "w1")
    queue.fail_next(10, 503, retry_after=0, method="PATCH")
    plan = Plan(PlanKind.DISPATCH, tuple(decisions((aid, "a1"))))
    with pytest.raises(QueueUnavailable):
        await take_job(rt, Claim(lease, job_id, spec_of(task["id"]), JobStatus.OPEN), plan, None)
    after = job(rt, job_id)
    # Kept leased but expired: the take may have reached the queue, so the sweep must look.
    assert after.status == "OPEN" and after.lease_token == lease.token
    assert after.lease_expires_at is not None and after.lease_expires_at <= utcnow()
    assert after.attempts == 0
    with rt.uow() as uow:
        assert uow.session.scalars(select(JobDistributionRecord)).all() == []


async def test_task_taken_elsewhere_frees_the_agents_and_leaves_the_job_to_the_sweep(
    rt: Runtime, queue: SimulatedQueue, prefect_harness: None
) -> None:
    aid = add_agent(rt, "a1")
    task = queue.add_task(title="t", category="general")
    job_id = store(rt, task["id"])
    lease = claim(rt, task["id"], "w1")
    queue.set_status(task["id"], "DISTRIBUTED")  # a take landed first (perhaps a dead worker's)
    plan = Plan(PlanKind.DISPATCH, tuple(decisions((aid, "a1"))))

    taken = await take_job(
        rt, Claim(lease, job_id, spec_of(task["id"]), JobStatus.OPEN), plan, None
    )

    assert taken == "taken by another consumer (409)"
    after = job(rt, job_id)  # kept, never deleted: deleting could lose a job we own
    assert after.status == "OPEN" and after.lease_expires_at is not None
    assert after.lease_expires_at <= utcnow()
    with rt.uow() as uow:
        assert uow.agents.in_flight_counts() == {}
    lines = await reconcile_stale_open(rt, 10)
    assert [x.action for x in lines] == ["rescued"]
