"""Hypothesis drives random moves by several actors against real PostgreSQL: leased workers,
operators, the sweep and raw SQL. No illegal move may ever be accepted, and a worker whose
lease is gone may never write."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Job
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import (
    AGENT_TRANSITIONS,
    AgentRunStatus,
    IllegalTransition,
    JobStatus,
    can_move_job,
)
from tests.support.reliability import add_agent, decisions

pytestmark = [pytest.mark.postgres]
WORKERS = ("w1", "w2", "w3")
JOB_TARGETS = st.sampled_from(list(JobStatus))
AGENT_TARGETS = st.sampled_from([s for s in AgentRunStatus if s is not AgentRunStatus.IDLE])


class JobMachine(RuleBasedStateMachine):
    """The model: each job's status and which worker's lease (if any) is the live one."""

    rt: Runtime
    agent_id: str
    numbers = itertools.count()

    jobs = Bundle("jobs")
    rows = Bundle("rows")

    def __init__(self) -> None:
        super().__init__()
        self.status: dict[str, JobStatus] = {}
        self.holder: dict[str, str | None] = {}  # job -> worker whose token the job carries
        self.expired: set[str] = set()  # jobs whose lease ran out (still fenced by its token)
        self.leases: dict[tuple[str, str], Lease] = {}  # (worker, job) -> last lease it got
        self.row_status: dict[str, AgentRunStatus] = {}
        self.row_job: dict[str, str] = {}

    @rule(target=jobs)
    def store(self) -> str:
        with self.rt.uow() as uow:
            job_id = uow.jobs.intake(JobSpec(f"t-{next(self.numbers)}", "t", "general"))
            uow.commit()
        self.status[job_id], self.holder[job_id] = JobStatus.OPEN, None
        return job_id

    @rule(job=jobs, worker=st.sampled_from(WORKERS))
    def claim(self, job: str, worker: str) -> None:
        with self.rt.uow() as uow:
            qid = uow.session.get(Job, job).queue_task_id  # type: ignore[union-attr]
            got = uow.jobs.claim_open([qid], worker, 300, utcnow())
            if not got and self.status[job] in (JobStatus.DISTRIBUTED, JobStatus.IN_PROGRESS):
                rescued = uow.jobs.claim_rescued(worker, 300, utcnow(), 1000)
                for other in rescued:  # it takes every handed-back job, not just this one
                    # (jobs of earlier examples share the database; the model ignores them)
                    if other.job_id != job and other.job_id in self.holder:
                        assert self.holder[other.job_id] is None
                        self.leases[(worker, other.job_id)] = other
                        self.holder[other.job_id] = worker
                got = [g for g in rescued if g.job_id == job]
            uow.commit()
        takeover = job in self.expired and self.status[job] is JobStatus.OPEN
        free = not self.status[job].terminal and (self.holder[job] is None or takeover)
        assert bool(got) == free, f"claim by {worker}: free={free}, got={got}"
        if got:
            self.leases[(worker, job)], self.holder[job] = got[0], worker
            self.expired.discard(job)

    @rule(job=jobs)
    def lease_expires(self, job: str) -> None:
        """Time passes for a job whose worker died: its lease runs out (but is not cleared)."""
        with self.rt.uow() as uow:
            uow.session.execute(
                update(Job)
                .where(Job.id == job, Job.lease_token.is_not(None))
                .values(lease_expires_at=utcnow() - dt.timedelta(seconds=1))
            )
            uow.commit()
        if self.holder[job] is not None:
            # Its token still fences writes until someone takes over: claim_open for an OPEN
            # job, the sweep for a taken one.
            self.expired.add(job)

    @rule(job=jobs)
    def sweep_hands_back(self, job: str) -> None:
        with self.rt.uow() as uow:
            for found in uow.sweep.lock_expired_active(utcnow(), 1000):
                if found.id == job:
                    uow.sweep.hand_back(job, found.lease_token or "")
                    self.holder[job] = None
                    self.expired.discard(job)
            uow.commit()

    @rule(job=jobs, worker=st.sampled_from(WORKERS), to=JOB_TARGETS)
    def worker_moves(self, job: str, worker: str, to: JobStatus) -> None:
        target = to
        lease = self.leases.get((worker, job))
        if lease is None:
            return
        legal = can_move_job(self.status[job], target)
        holds = self.holder[job] == worker and self._token(job) == lease.token
        try:
            with self.rt.uow() as uow:
                uow.jobs.transition(lease, target, utcnow())
                uow.commit()
        except LeaseLost:
            assert not holds, "the live lease was refused"
            return
        except IllegalTransition:
            assert holds and not legal
            return
        assert holds and legal, f"accepted {self.status[job]} -> {target} by {worker}"
        self.status[job] = target
        if target.terminal:
            self.holder[job] = None

    @rule(job=jobs, to=JOB_TARGETS)
    def operator_moves(self, job: str, to: JobStatus) -> None:
        target = to
        legal = can_move_job(self.status[job], target)
        try:
            with self.rt.uow() as uow:
                uow.jobs.transition_unleased(job, target, utcnow())
                uow.commit()
        except IllegalTransition:
            assert not legal
            return
        assert legal
        self.status[job], self.holder[job] = target, None

    @rule(job=jobs, to=JOB_TARGETS)
    def raw_sql_job_update(self, job: str, to: JobStatus) -> None:
        target = to
        """A client that skips every application check: only the trigger stands in the way."""
        legal = target is self.status[job] or can_move_job(self.status[job], target)
        values = {"status": target.value}
        if target.terminal:
            values |= {"lease_token": None, "lease_owner": None, "lease_expires_at": None}
        try:
            with self.rt.uow() as uow:
                uow.session.execute(update(Job).where(Job.id == job).values(**values))
                uow.commit()
        except DBAPIError as exc:
            assert not legal and "illegal job transition" in str(exc)
            return
        assert legal, f"database accepted {self.status[job]} -> {target}"
        self.status[job] = target
        if target.terminal:
            self.holder[job] = None

    @rule(job=jobs)
    def raw_sql_lease_on_finished_job(self, job: str) -> None:
        try:
            with self.rt.uow() as uow:
                uow.session.execute(
                    update(Job)
                    .where(Job.id == job)
                    .values(lease_token="x", lease_expires_at=utcnow() + dt.timedelta(minutes=5))
                )
                uow.commit()
        except DBAPIError:
            assert self.status[job].terminal
            return
        assert not self.status[job].terminal, "a finished job took a lease"
        self.holder[job] = "raw"  # a live lease nobody in the model holds
        self.expired.discard(job)

    @rule(target=rows, job=jobs, worker=st.sampled_from(WORKERS))
    def distribute(self, job: str, worker: str) -> list[str]:
        lease = self.leases.get((worker, job))
        if lease is None:
            return []
        try:
            with self.rt.uow() as uow:
                made = uow.distributions.create(lease, decisions((self.agent_id, "a")), utcnow())
                uow.commit()
        except LeaseLost:
            assert self.holder[job] != worker or self._token(job) != lease.token
            return []
        for a in made.assignments:
            self.row_status[a.row_id], self.row_job[a.row_id] = AgentRunStatus.ASSIGNED, job
        return [a.row_id for a in made.assignments]

    @rule(made=rows, to=AGENT_TARGETS)
    def raw_sql_agent_update(self, made: list[str], to: AgentRunStatus) -> None:
        target = to
        for row in made:
            current = self.row_status[row]
            legal = target is current or target in AGENT_TRANSITIONS[current]
            try:
                with self.rt.uow() as uow:
                    uow.session.execute(
                        text("UPDATE job_distribution_agents SET status = :s WHERE id = :i"),
                        {"s": target.value, "i": row},
                    )
                    uow.commit()
            except DBAPIError as exc:
                assert not legal and "illegal agent transition" in str(exc)
                continue
            assert legal, f"database accepted agent {current} -> {target}"
            self.row_status[row] = target

    def _token(self, job: str) -> str | None:
        with self.rt.uow() as uow:
            return uow.session.get(Job, job).lease_token  # type: ignore[union-attr]

    @invariant()
    def database_matches_the_model(self) -> None:
        if not self.status:
            return
        with self.rt.uow() as uow:
            for job_id, status, token in uow.session.execute(
                text("SELECT id, status, lease_token FROM jobs WHERE id = ANY(:ids)"),
                {"ids": list(self.status)},
            ):
                assert status == self.status[job_id].value
                if self.status[job_id].terminal:
                    assert token is None


@pytest.mark.slow  # 100 examples of 25 steps on PostgreSQL: half a minute and more
def test_no_illegal_move_and_no_stale_write_is_ever_accepted(runtime: Runtime) -> None:
    JobMachine.rt = runtime
    JobMachine.agent_id = add_agent(runtime, "agent", max_concurrency=10_000)
    run_state_machine_as_test(
        JobMachine,
        settings=settings(
            max_examples=100,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
