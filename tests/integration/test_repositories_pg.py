"""Repositories against a real PostgreSQL: intake, leases, SKIP LOCKED, fencing, constraints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.distribution_repository import Moving
from agent_dispatch.db.models import Agent, Job, JobDistributionAgent, utcnow
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.matching import Decision
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import (
    AgentRunStatus,
    DistributionStatus,
    IllegalTransition,
    JobStatus,
)
from agent_dispatch.settings import Settings
from tests.conftest import make_settings

pytestmark = [pytest.mark.postgres]

LEASE_SECONDS = 30


def spec(qid: str, **overrides: Any) -> JobSpec:
    base: dict[str, Any] = {
        "queue_task_id": qid,
        "title": f"task {qid}",
        "category": "text",
        "tags": ("en",),
        "skill_level": 2,
        "payload": {"text": "hello"},
    }
    base.update(overrides)
    return JobSpec(**base)


def intake(rt: Runtime, *qids: str) -> list[str]:
    with rt.uow() as uow:
        ids = [uow.jobs.intake(spec(q)) for q in qids]
        uow.commit()
    return ids


def claim(rt: Runtime, qid: str, owner: str = "worker-a", now: dt.datetime | None = None) -> Lease:
    with rt.uow() as uow:
        leases = uow.jobs.claim_open([qid], owner, LEASE_SECONDS, now or utcnow())
        uow.commit()
    assert len(leases) == 1
    return leases[0]


def add_agent(rt: Runtime, name: str, max_concurrency: int = 1) -> str:
    with rt.uow() as uow:
        agent = uow.agents.add(
            Agent(
                name=name,
                url=f"http://127.0.0.1:9/{name}",
                categories=["text"],
                tags=["en"],
                skill_level=3,
                max_concurrency=max_concurrency,
            )
        )
        uow.commit()
        return agent.id


def chosen(agent_id: str, name: str, rank: int = 1) -> Decision:
    return Decision(agent_id, name, True, True, f"rank {rank} by score 0.500", 0.5, rank)


def job_row(rt: Runtime, job_id: str) -> dict[str, Any]:
    """The job's mutable columns, read in a fresh transaction."""
    with rt.uow() as uow:
        job = uow.jobs.get(job_id)
        assert job is not None
        return {
            "status": job.status,
            "lease_token": job.lease_token,
            "lease_owner": job.lease_owner,
            "lease_expires_at": job.lease_expires_at,
            "updated_at": job.updated_at,
            "distributed_at": job.distributed_at,
            "finished_at": job.finished_at,
            "error": job.error,
            "attempts": job.attempts,
        }


def agent_row(rt: Runtime, row_id: str) -> tuple[str, Any]:
    with rt.uow() as uow:
        row = uow.session.get(JobDistributionAgent, row_id)
        assert row is not None
        return row.status, row.error


def stale(lease: Lease) -> Lease:
    return dataclasses.replace(lease, token=str(uuid.uuid4()))


def distribute(rt: Runtime, lease: Lease, decisions: list[Decision]) -> Any:
    with rt.uow() as uow:
        created = uow.distributions.create(lease, decisions, utcnow())
        uow.commit()
    return created


def one_agent_job(rt: Runtime) -> tuple[str, Lease, Any]:
    """Job q-1 leased and assigned to one agent, `solo`: (job id, lease, the attempt)."""
    (job_id,) = intake(rt, "q-1")
    lease = claim(rt, "q-1")
    solo = add_agent(rt, "solo")
    return job_id, lease, distribute(rt, lease, [chosen(solo, "solo")])


# -- intake -------------------------------------------------------------------------------------


def test_intake_is_idempotent(runtime: Runtime) -> None:
    (first,) = intake(runtime, "q-1")
    with runtime.uow() as uow:
        # A second delivery, even with changed fields, returns the stored job untouched.
        second = uow.jobs.intake(spec("q-1", title="changed"))
        again = uow.jobs.intake(spec("q-1"))
        uow.commit()
    assert second == first
    assert again == first
    with runtime.uow() as uow:
        count = uow.session.scalar(select(func.count()).select_from(Job))
        job = uow.jobs.get(first)
        assert job is not None
        assert count == 1
        assert job.title == "task q-1"
        assert job.status == "OPEN"
        assert job.queue_status == "OPEN"
        assert job.lease_token is None
        assert job.tags == ["en"]
        assert job.payload == {"text": "hello"}


def test_intake_of_different_tasks_gives_different_jobs(runtime: Runtime) -> None:
    ids = intake(runtime, "q-1", "q-2", "q-1")
    assert ids[0] == ids[2]
    assert ids[0] != ids[1]


# -- leases -------------------------------------------------------------------------------------


def test_claim_open_leases_once_until_expiry(runtime: Runtime) -> None:
    (job_id,) = intake(runtime, "q-1")
    t0 = utcnow()
    lease = claim(runtime, "q-1", owner="worker-a", now=t0)
    assert lease.job_id == job_id
    assert lease.owner == "worker-a"
    assert lease.expires_at == t0 + dt.timedelta(seconds=LEASE_SECONDS)
    row = job_row(runtime, job_id)
    assert row["lease_token"] == lease.token
    assert row["lease_owner"] == "worker-a"
    assert row["lease_expires_at"] == lease.expires_at
    assert row["status"] == "OPEN"

    for owner in ("worker-b", "worker-a"):
        with runtime.uow() as uow:
            assert (
                uow.jobs.claim_open(["q-1"], owner, LEASE_SECONDS, t0 + dt.timedelta(seconds=29))
                == []
            )
            uow.commit()
    assert job_row(runtime, job_id)["lease_token"] == lease.token

    later = t0 + dt.timedelta(seconds=LEASE_SECONDS + 1)
    taken_over = claim(runtime, "q-1", owner="worker-b", now=later)
    assert taken_over.job_id == job_id
    assert taken_over.token != lease.token
    row = job_row(runtime, job_id)
    assert row["lease_owner"] == "worker-b"
    assert row["lease_token"] == taken_over.token
    # The first worker's lease is gone: its writes are fenced off.
    with runtime.uow() as uow:
        assert not uow.jobs.holds(lease)
        assert uow.jobs.holds(taken_over)
        with pytest.raises(LeaseLost):
            uow.jobs.renew(lease, later, LEASE_SECONDS)


def test_claim_open_ignores_jobs_that_are_not_open(runtime: Runtime) -> None:
    (job_id,) = intake(runtime, "q-1")
    with runtime.uow() as uow:
        uow.jobs.transition_unleased(job_id, JobStatus.CANCELLED, utcnow())
        uow.commit()
    with runtime.uow() as uow:
        assert uow.jobs.claim_open(["q-1"], "w", LEASE_SECONDS, utcnow()) == []


def test_claim_open_only_takes_the_named_tasks(runtime: Runtime) -> None:
    intake(runtime, "q-1", "q-2", "q-3")
    with runtime.uow() as uow:
        leases = uow.jobs.claim_open(["q-1", "q-3", "q-unknown"], "w", LEASE_SECONDS, utcnow())
        uow.commit()
        specs = {uow.jobs.get(lease.job_id).queue_task_id for lease in leases}  # type: ignore[union-attr]
    assert specs == {"q-1", "q-3"}


def test_skip_locked_a_locked_job_is_skipped_not_waited_for(runtime: Runtime) -> None:
    intake(runtime, "q-1")
    now = utcnow()
    with runtime.uow() as a, runtime.uow() as b:
        got_a = a.jobs.claim_open(["q-1"], "worker-a", LEASE_SECONDS, now)
        assert len(got_a) == 1
        # Session A holds the row lock (uncommitted). Without SKIP LOCKED, B would block here
        # and hit the lock timeout instead of returning at once.
        b.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        assert b.jobs.claim_open(["q-1"], "worker-b", LEASE_SECONDS, now) == []
        a.commit()
        b.commit()
    with runtime.uow() as c:
        assert c.jobs.claim_open(["q-1"], "worker-c", LEASE_SECONDS, now) == []


def test_concurrent_claims_in_threads_never_share_a_job(runtime: Runtime) -> None:
    qids = [f"q-{i}" for i in range(30)]
    intake(runtime, *qids)
    now = utcnow()
    workers = 4
    barrier = threading.Barrier(workers)
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def worker(owner: str) -> None:
        try:
            got: list[str] = []
            barrier.wait(timeout=10)
            # Several small claims each, so the workers interleave.
            for start in range(0, len(qids), 5):
                with runtime.uow() as uow:
                    leases = uow.jobs.claim_open(qids[start : start + 10], owner, 60, now)
                    uow.commit()
                got.extend(lease.job_id for lease in leases)
            results[owner] = got
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(results) == workers
    all_claims = [job_id for got in results.values() for job_id in got]
    assert len(all_claims) == len(set(all_claims)), "a job was leased to two workers"
    assert len(all_claims) == len(qids)
    with runtime.uow() as uow:
        owners = dict(uow.session.execute(select(Job.id, Job.lease_owner)).tuples().all())
    for owner, got in results.items():
        for job_id in got:
            assert owners[job_id] == owner


def test_two_sessions_racing_for_one_job_only_one_wins(runtime: Runtime) -> None:
    for round_ in range(10):
        qid = f"race-{round_}"
        intake(runtime, qid)
        barrier = threading.Barrier(2)
        got: dict[str, int] = {}

        def claimer(
            owner: str,
            qid: str = qid,
            barrier: threading.Barrier = barrier,
            got: dict[str, int] = got,
        ) -> None:
            with runtime.uow() as uow:
                barrier.wait(timeout=10)
                leases = uow.jobs.claim_open([qid], owner, 60, utcnow())
                uow.commit()
            got[owner] = len(leases)

        threads = [threading.Thread(target=claimer, args=(o,)) for o in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(got.values()) == [0, 1], f"round {round_}: {got}"


# -- fencing ------------------------------------------------------------------------------------


def test_stale_lease_token_cannot_write(runtime: Runtime) -> None:
    job_id, lease, created = one_agent_job(runtime)
    row_id = created.assignments[0].row_id
    before = job_row(runtime, job_id)
    bad = stale(lease)

    with runtime.uow() as uow:
        with pytest.raises(LeaseLost) as info:
            uow.jobs.transition(bad, JobStatus.DISTRIBUTED, utcnow())
        assert info.value.job_id == job_id
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.jobs.renew(bad, utcnow(), 600)
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.distributions.move_agent(bad, row_id, AgentRunStatus.WORKING)
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.jobs.get_leased(bad)
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.distributions.create(bad, [chosen(created.assignments[0].agent_id, "solo")], utcnow())
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.distributions.finish(bad, created.distribution_id, DistributionStatus.FAILED, utcnow())
    with runtime.uow() as uow:
        assert uow.jobs.holds(bad) is False
        uow.jobs.release(bad)  # a no-op for a stale token
        uow.commit()

    assert job_row(runtime, job_id) == before
    assert agent_row(runtime, row_id) == ("ASSIGNED", None)
    # The real lease still works.
    with runtime.uow() as uow:
        assert uow.jobs.transition(lease, JobStatus.DISTRIBUTED, utcnow()) is JobStatus.OPEN
        uow.distributions.move_agent(lease, row_id, AgentRunStatus.WORKING)
        uow.commit()
    assert job_row(runtime, job_id)["status"] == "DISTRIBUTED"
    assert agent_row(runtime, row_id) == ("WORKING", None)


def test_expired_lease_taken_over_fences_the_old_holder(runtime: Runtime) -> None:
    (job_id,) = intake(runtime, "q-1")
    t0 = utcnow()
    old = claim(runtime, "q-1", owner="worker-a", now=t0 - dt.timedelta(seconds=120))
    new = claim(runtime, "q-1", owner="worker-b", now=t0)
    before = job_row(runtime, job_id)
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.jobs.transition(old, JobStatus.DISTRIBUTED, t0)
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.jobs.renew(old, t0, LEASE_SECONDS)
    assert job_row(runtime, job_id) == before
    with runtime.uow() as uow:
        renewed = uow.jobs.renew(new, t0 + dt.timedelta(seconds=10), LEASE_SECONDS)
        uow.commit()
    assert renewed.expires_at == t0 + dt.timedelta(seconds=10 + LEASE_SECONDS)
    assert job_row(runtime, job_id)["lease_expires_at"] == renewed.expires_at


def test_illegal_job_transition_raises_and_changes_nothing(runtime: Runtime) -> None:
    (job_id,) = intake(runtime, "q-1")
    lease = claim(runtime, "q-1")
    before = job_row(runtime, job_id)
    for target in (JobStatus.COMPLETED, JobStatus.IN_PROGRESS, JobStatus.FAILED, JobStatus.OPEN):
        with runtime.uow() as uow:
            with pytest.raises(IllegalTransition) as info:
                uow.jobs.transition(lease, target, utcnow(), error="should not be written")
            assert (info.value.current, info.value.target) == (JobStatus.OPEN, target)
    assert job_row(runtime, job_id) == before


def test_a_job_loaded_before_its_moves_reads_what_they_wrote(runtime: Runtime) -> None:
    (job_id,) = intake(runtime, "q-1")
    lease = claim(runtime, "q-1")
    with runtime.uow() as uow:
        job = uow.jobs.get_leased(lease)
        uow.jobs.transition(lease, JobStatus.DISTRIBUTED, utcnow(), queue_status="DISTRIBUTED")
        assert (job.status, job.queue_status) == ("DISTRIBUTED", "DISTRIBUTED")
        assert job.distributed_at is not None
        uow.jobs.transition(lease, JobStatus.IN_PROGRESS, utcnow())
        uow.jobs.transition(lease, JobStatus.COMPLETED, utcnow(), result={"answer": 42})
        assert (job.status, job.result, job.lease_token) == ("COMPLETED", {"answer": 42}, None)
        assert job not in uow.session.dirty  # kept in step, not a change of its own to flush
        uow.commit()
    with runtime.uow() as uow:
        stored = uow.jobs.get(job_id)
        assert stored is not None
        assert (stored.status, stored.result, stored.lease_token) == (
            "COMPLETED",
            {"answer": 42},
            None,
        )


def test_completed_job_cannot_move_again(runtime: Runtime) -> None:
    (job_id,) = intake(runtime, "q-1")
    lease = claim(runtime, "q-1")
    with runtime.uow() as uow:
        for target in (JobStatus.DISTRIBUTED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED):
            uow.jobs.transition(lease, target, utcnow())
        uow.commit()
    done = job_row(runtime, job_id)
    assert done["status"] == "COMPLETED"
    assert done["finished_at"] is not None
    assert done["distributed_at"] is not None
    # A terminal move gives the lease back.
    assert (done["lease_token"], done["lease_owner"], done["lease_expires_at"]) == (None,) * 3

    with runtime.uow() as uow:
        with pytest.raises(IllegalTransition) as info:
            uow.jobs.transition_unleased(job_id, JobStatus.IN_PROGRESS, utcnow())
        assert str(info.value) == "illegal job transition COMPLETED -> IN_PROGRESS"
    with runtime.uow() as uow, pytest.raises(IllegalTransition):
        uow.jobs.transition_unleased(job_id, JobStatus.CANCELLED, utcnow())
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.jobs.transition(lease, JobStatus.IN_PROGRESS, utcnow())
    assert job_row(runtime, job_id) == done


def test_illegal_agent_row_move_raises_and_changes_nothing(runtime: Runtime) -> None:
    _, lease, created = one_agent_job(runtime)
    row_id = created.assignments[0].row_id
    with runtime.uow() as uow, pytest.raises(IllegalTransition, match="ASSIGNED -> COMPLETED"):
        uow.distributions.move_agent(lease, row_id, AgentRunStatus.COMPLETED, error="x")
    with runtime.uow() as uow, pytest.raises(IllegalTransition):
        uow.distributions.move_agent(None, row_id, AgentRunStatus.IDLE)
    assert agent_row(runtime, row_id) == ("ASSIGNED", None)


def test_a_move_from_a_status_the_row_no_longer_has_changes_nothing(runtime: Runtime) -> None:
    """A caller that read the row earlier (`seen`: a call's end, a finish's losers) and was
    overtaken meanwhile gets IllegalTransition, and the row keeps what it was moved to."""
    job_id, lease, dist = one_agent_job(runtime)
    a = dist.assignments[0]
    with runtime.uow() as uow:
        uow.distributions.move_agent(lease, a.row_id, AgentRunStatus.WORKING)
        uow.distributions.move_agent(lease, a.row_id, AgentRunStatus.CANCELLED, error="stopped")
        uow.commit()
    seen = Moving(AgentRunStatus.WORKING.value, a.agent_id, a.agent_name, job_id, "q-1")
    with runtime.uow() as uow, pytest.raises(IllegalTransition):
        uow.distributions.move_agent(
            lease, a.row_id, AgentRunStatus.COMPLETED, seen=seen, result={"late": 1}
        )
    assert agent_row(runtime, a.row_id) == ("CANCELLED", "stopped")


def test_an_agent_row_loaded_before_its_move_reads_what_it_wrote(runtime: Runtime) -> None:
    _, lease, dist = one_agent_job(runtime)
    row_id = dist.assignments[0].row_id
    with runtime.uow() as uow:
        (row,) = uow.distributions.rows(dist.distribution_id)
        uow.distributions.move_agent(lease, row_id, AgentRunStatus.WORKING, started_at=utcnow())
        uow.distributions.move_agent(lease, row_id, AgentRunStatus.COMPLETED, result={"ok": 1})
        assert (row.status, row.result) == ("COMPLETED", {"ok": 1})
        assert row.started_at is not None
        assert row not in uow.session.dirty
        uow.commit()
    assert agent_row(runtime, row_id)[0] == "COMPLETED"


def test_transition_unleased_revokes_the_lease(runtime: Runtime) -> None:
    job_id, lease, created = one_agent_job(runtime)
    row_id = created.assignments[0].row_id
    with runtime.uow() as uow:
        uow.jobs.transition(lease, JobStatus.DISTRIBUTED, utcnow())
        uow.commit()

    with runtime.uow() as uow:
        previous = uow.jobs.transition_unleased(
            job_id, JobStatus.CANCELLED, utcnow(), error="cancelled by an operator"
        )
        uow.commit()
    assert previous is JobStatus.DISTRIBUTED
    after = job_row(runtime, job_id)
    assert after["status"] == "CANCELLED"
    assert after["error"] == "cancelled by an operator"
    assert (after["lease_token"], after["lease_owner"], after["lease_expires_at"]) == (None,) * 3

    with runtime.uow() as uow:
        assert uow.jobs.holds(lease) is False
        with pytest.raises(LeaseLost):
            uow.jobs.transition(lease, JobStatus.IN_PROGRESS, utcnow())
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.jobs.renew(lease, utcnow(), LEASE_SECONDS)
    with runtime.uow() as uow, pytest.raises(LeaseLost):
        uow.distributions.move_agent(lease, row_id, AgentRunStatus.WORKING)
    assert job_row(runtime, job_id) == after
    assert agent_row(runtime, row_id) == ("ASSIGNED", None)


def test_transition_unleased_of_an_unknown_job(runtime: Runtime) -> None:
    with runtime.uow() as uow, pytest.raises(KeyError):
        uow.jobs.transition_unleased(str(uuid.uuid4()), JobStatus.CANCELLED, utcnow())


# -- constraints --------------------------------------------------------------------------------


def test_check_constraint_rejects_a_bogus_job_status(runtime: Runtime) -> None:
    (job_id,) = intake(runtime, "q-1")
    with runtime.uow() as uow:
        with pytest.raises(IntegrityError) as info:
            uow.session.execute(
                text("UPDATE jobs SET status = 'BOGUS' WHERE id = :id"), {"id": job_id}
            )
        assert isinstance(info.value.orig, psycopg.errors.CheckViolation)
        assert "BOGUS" in str(info.value.orig)
    assert job_row(runtime, job_id)["status"] == "OPEN"
    # The named CHECK constraint itself (an INSERT bypasses any update-time guard).
    with runtime.uow() as uow, pytest.raises(IntegrityError, match="ck_jobs_status"):
        uow.session.execute(
            text(
                "INSERT INTO jobs (id, queue_task_id, title, description, category, tags,"
                " skill_level, payload, status, attempts, created_at, updated_at)"
                " VALUES (:id, 'q-bogus', 't', '', 'text', '[]', 1, '{}', 'BOGUS', 0, now(), now())"
            ),
            {"id": str(uuid.uuid4())},
        )
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Job)) == 1


def test_check_constraint_rejects_a_bogus_agent_row_status(runtime: Runtime) -> None:
    _, _, created = one_agent_job(runtime)
    row_id = created.assignments[0].row_id
    with runtime.uow() as uow:
        with pytest.raises(IntegrityError) as info:
            uow.session.execute(
                text("UPDATE job_distribution_agents SET status = 'BOGUS' WHERE id = :id"),
                {"id": row_id},
            )
        assert isinstance(info.value.orig, psycopg.errors.CheckViolation)
    other = add_agent(runtime, "other")
    with runtime.uow() as uow:
        uow.session.add(
            JobDistributionAgent(
                distribution_id=created.distribution_id,
                agent_id=other,
                agent_name="other",
                status="BOGUS",
                idempotency_key="k",
            )
        )
        with pytest.raises(IntegrityError, match="ck_job_distribution_agents_status"):
            uow.session.flush()
    with runtime.uow() as uow, pytest.raises(IntegrityError, match="ck_agents_skill_level"):
        uow.session.execute(text("UPDATE agents SET skill_level = 9"))
    assert agent_row(runtime, row_id) == ("ASSIGNED", None)


def test_unique_distribution_agent(runtime: Runtime) -> None:
    intake(runtime, "q-1")
    lease = claim(runtime, "q-1")
    solo = add_agent(runtime, "solo", max_concurrency=5)
    created = distribute(runtime, lease, [chosen(solo, "solo")])
    with runtime.uow() as uow:
        uow.session.add(
            JobDistributionAgent(
                distribution_id=created.distribution_id,
                agent_id=solo,
                agent_name="solo",
                rank=1,
                status="ASSIGNED",
                idempotency_key="dup",
            )
        )
        with pytest.raises(IntegrityError, match="uq_distribution_agent"):
            uow.session.flush()
    with runtime.uow() as uow:
        assert len(uow.distributions.rows(created.distribution_id)) == 1


# -- distributions ------------------------------------------------------------------------------


def test_create_rechecks_capacity_and_drops_full_agents(runtime: Runtime) -> None:
    (job1, job2) = intake(runtime, "q-1", "q-2")
    solo = add_agent(runtime, "solo", max_concurrency=1)
    duo = add_agent(runtime, "duo", max_concurrency=2)

    lease1 = claim(runtime, "q-1")
    first = distribute(runtime, lease1, [chosen(solo, "solo")])
    assert [a.agent_name for a in first.assignments] == ["solo"]
    assert first.dropped == ()
    with runtime.uow() as uow:
        uow.distributions.move_agent(lease1, first.assignments[0].row_id, AgentRunStatus.WORKING)
        uow.commit()

    lease2 = claim(runtime, "q-2")
    decisions = [chosen(solo, "solo", 1), chosen(duo, "duo", 2)]
    second = distribute(runtime, lease2, decisions)
    assert second.attempt == 1
    assert [(a.agent_name, a.rank) for a in second.assignments] == [("duo", 2)]
    assert second.dropped == ("solo",)
    assignment = second.assignments[0]
    assert assignment.agent_id == duo
    assert assignment.idempotency_key == f"{second.distribution_id}:{duo}"
    assert assignment.url == "http://127.0.0.1:9/duo"

    with runtime.uow() as uow:
        rows = uow.distributions.rows(second.distribution_id)
        assert [(r.agent_name, r.status) for r in rows] == [("duo", "ASSIGNED")]
        job = uow.jobs.get(job2)
        assert job is not None
        assert job.attempts == 1
        (record,) = job.distributions
        assert record.status == "RUNNING"
        assert [d["agent_name"] for d in record.decisions] == ["solo", "duo"]
        assert uow.agents.in_flight_counts() == {solo: 1, duo: 1}
    assert job_row(runtime, job1)["attempts"] == 1


def test_create_drops_an_agent_that_no_longer_exists(runtime: Runtime) -> None:
    intake(runtime, "q-1")
    lease = claim(runtime, "q-1")
    created = distribute(runtime, lease, [chosen(str(uuid.uuid4()), "ghost")])
    assert created.assignments == ()
    assert created.dropped == ("ghost",)


def test_second_attempt_gets_attempt_two(runtime: Runtime) -> None:
    intake(runtime, "q-1")
    lease = claim(runtime, "q-1")
    solo = add_agent(runtime, "solo", max_concurrency=3)
    first = distribute(runtime, lease, [chosen(solo, "solo")])
    with runtime.uow() as uow:
        uow.distributions.move_agent(lease, first.assignments[0].row_id, AgentRunStatus.FAILED)
        uow.distributions.finish(lease, first.distribution_id, DistributionStatus.FAILED, utcnow())
        uow.commit()
    second = distribute(runtime, lease, [chosen(solo, "solo")])
    assert second.attempt == 2
    assert [a.agent_name for a in second.assignments] == ["solo"]


def test_concurrent_creates_cannot_overfill_an_agent(runtime: Runtime) -> None:
    intake(runtime, "q-1", "q-2")
    solo = add_agent(runtime, "solo", max_concurrency=1)
    lease1 = claim(runtime, "q-1")
    lease2 = claim(runtime, "q-2")
    result: dict[str, Any] = {}

    def second_worker() -> None:
        with runtime.uow() as uow:
            result["b"] = uow.distributions.create(lease2, [chosen(solo, "solo")], utcnow())
            uow.commit()

    with runtime.uow() as a:
        got_a = a.distributions.create(lease1, [chosen(solo, "solo")], utcnow())
        assert [x.agent_name for x in got_a.assignments] == ["solo"]
        # B must wait for A's lock on the agent row, then count A's committed row.
        thread = threading.Thread(target=second_worker)
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive(), "the second create did not wait for the agent row lock"
        a.commit()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert result["b"].assignments == ()
    assert result["b"].dropped == ("solo",)
    with runtime.uow() as uow:
        assert uow.agents.in_flight_counts() == {solo: 1}


# -- settings -----------------------------------------------------------------------------------


def test_plain_postgresql_url_works_through_settings(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert database_url.startswith("postgresql://")
    monkeypatch.setenv("DATABASE_URL", database_url)
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://" + database_url[len("postgresql://") :]
    assert settings.effective_database_url == settings.database_url
    rt = Runtime(settings)
    try:
        assert rt.engine.dialect.name == "postgresql"
        assert rt.engine.dialect.driver == "psycopg"
        (job_id,) = intake(rt, "q-1")
        with rt.uow() as uow:
            assert uow.jobs.find("q-1").id == job_id  # type: ignore[union-attr]
    finally:
        rt.dispose()


def test_postgres_scheme_alias_and_make_settings(database_url: str) -> None:
    alias = "postgres://" + database_url[len("postgresql://") :]
    settings = make_settings(alias)
    assert settings.database_url == "postgresql+psycopg://" + database_url[len("postgresql://") :]
    rt = Runtime(settings)
    try:
        with rt.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
    finally:
        rt.dispose()
