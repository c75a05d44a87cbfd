"""The sweep on real PostgreSQL against a loopback queue: rescue, reconcile, outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Job, JobDistributionRecord
from agent_dispatch.db.types import utcnow
from agent_dispatch.services.outbox import send_unreported
from agent_dispatch.services.sweep import reconcile_stale_open, rescue_expired, stop_abandoned
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import QUEUE_TOKEN, make_settings
from tests.support.reliability import (
    add_agent,
    age_lease,
    claim,
    decisions,
    in_progress,
    job,
    rows,
    store,
)
from tests.support.runtimes import installed
from tests.support.service_deps import RecordingEvents

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def rt(database_url: str, queue: SimulatedQueue) -> Iterator[Runtime]:
    runtime = Runtime(
        make_settings(
            database_url,
            remote_queue_url=queue.url,
            remote_queue_token=QUEUE_TOKEN,
            job_max_attempts=3,
            execution_retry_count=0,
        )
    )
    runtime.events = RecordingEvents()  # what is announced, without Prefect's event worker
    with installed(runtime):
        yield runtime


async def test_expired_lease_closes_rows_and_hands_the_job_back(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    job_id, _ = in_progress(rt, queue)
    rescued = await rescue_expired(rt, 100)
    assert [x.action for x in rescued.lines] == ["requeued"]
    assert [r.status for r in rows(rt, job_id)] == ["TIMEOUT", "CANCELLED"]
    after = job(rt, job_id)
    assert after.status == "IN_PROGRESS" and after.lease_token is None
    with rt.uow() as uow:
        assert [r.status for r in uow.session.scalars(select(JobDistributionRecord))] == [
            "ABANDONED"
        ]
        assert len(uow.jobs.claim_rescued("w2", 300, utcnow(), 10)) == 1
        uow.commit()
    assert (await rescue_expired(rt, 100)).lines == ()  # a live lease is never touched


async def test_spent_and_expired_jobs_end_and_the_queue_is_told(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    spent, spent_qid = in_progress(rt, queue, attempts=3)
    late, late_qid = in_progress(rt, queue, expires_at=utcnow() - dt.timedelta(seconds=1))
    rescued = await rescue_expired(rt, 100)
    assert sorted(x.action for x in rescued.lines) == ["EXPIRED", "FAILED"]
    lines = await send_unreported(rt, rescued.ended_job_ids, 3600, 100)
    assert sorted(x.action for x in lines) == ["reported", "reported"]
    assert queue.task(spent_qid)["status"] == "FAILED"
    assert queue.task(late_qid)["status"] == "EXPIRED"
    assert (job(rt, spent).status, job(rt, spent).queue_status) == ("FAILED", "FAILED")
    assert (job(rt, late).status, job(rt, late).queue_status) == ("EXPIRED", "EXPIRED")
    assert await send_unreported(rt, (), 0, 100) == []  # nothing left in the outbox


async def test_abandoned_calls_are_cancelled_at_the_agent(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    farm = AgentFarm({"busy": "slow:delay=30"})
    with farm.serve():
        in_progress(rt, queue, agent_url=farm.url_for("busy"))
        rescued = await rescue_expired(rt, 100)
        assert len(rescued.calls) == 1
        assert await stop_abandoned(rt, rescued.calls) == 1
        await rt.aclose_clients()
    assert [c.agent for c in farm.cancels] == ["busy"]


@pytest.mark.parametrize(
    ("queue_status", "action", "local", "queue_status_after"),
    [
        ("OPEN", "released", "OPEN", "OPEN"),
        ("DISTRIBUTED", "rescued", "DISTRIBUTED", "DISTRIBUTED"),
        ("IN_PROGRESS", "rescued", "DISTRIBUTED", "IN_PROGRESS"),
        ("CANCELLED", "mirrored", "CANCELLED", "CANCELLED"),
        ("COMPLETED", "mirrored", "CANCELLED", "COMPLETED"),  # OPEN -> COMPLETED is illegal
        (None, "mirrored", "CANCELLED", "CANCELLED"),  # gone from the queue
    ],
)
async def test_stale_open_job_follows_what_the_queue_says(
    rt: Runtime,
    queue: SimulatedQueue,
    queue_status: str | None,
    action: str,
    local: str,
    queue_status_after: str,
) -> None:
    qid = "task-x"
    if queue_status is not None:
        qid = queue.add_task(title="t", category="general")["id"]
        queue.set_status(qid, queue_status)
    job_id = store(rt, qid)
    aid = add_agent(rt, "a1")
    lease = claim(rt, qid)
    with rt.uow() as uow:  # crashed after reserving agents, around the take
        uow.distributions.create(lease, decisions((aid, "a1")), utcnow())
        uow.commit()
    age_lease(rt, job_id)

    lines = await reconcile_stale_open(rt, 100)

    assert [x.action for x in lines] == [action]
    after = job(rt, job_id)
    assert (after.status, after.queue_status) == (local, queue_status_after)
    assert after.lease_token is None
    assert [r.status for r in rows(rt, job_id)] == ["CANCELLED"]  # no agent held busy
    if local == "DISTRIBUTED":
        with rt.uow() as uow:
            assert len(uow.jobs.claim_rescued("w2", 300, utcnow(), 10)) == 1


async def test_stale_open_job_waits_for_a_reachable_queue(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    qid = queue.add_task(title="t", category="general")["id"]
    queue.set_status(qid, "DISTRIBUTED")
    job_id = store(rt, qid)
    claim(rt, qid)
    age_lease(rt, job_id)
    queue.fail_next(5, 503, retry_after=0)
    assert [x.action for x in await reconcile_stale_open(rt, 100)] == ["deferred"]
    assert job(rt, job_id).status == "OPEN" and job(rt, job_id).lease_token is not None
    queue.clear_faults()
    assert [x.action for x in await reconcile_stale_open(rt, 100)] == ["rescued"]


async def test_outbox_resends_until_accepted_and_never_finishes_twice(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    job_id, qid = in_progress(rt, queue, attempts=3)
    await rescue_expired(rt, 100)  # ends FAILED locally
    queue.fail_next(5, 503, retry_after=0)
    assert [x.action for x in await send_unreported(rt, (job_id,), 0, 100)] == ["deferred"]
    assert job(rt, job_id).queue_status == "IN_PROGRESS"
    queue.clear_faults()
    # Two sweeps at once: the conditional PATCH lets exactly one of them finish the task.
    a, b = await asyncio.gather(send_unreported(rt, (), 0, 100), send_unreported(rt, (), 0, 100))
    # One may find nothing left to send when the other already finished; none fails.
    assert {x.action for x in a + b} == {"reported"} and 1 <= len(a + b) <= 2
    assert queue.finished_count(qid) == 1
    assert job(rt, job_id).queue_status == "FAILED"


async def test_outbox_follows_a_queue_that_moved_on_and_respects_a_foreign_ending(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    moved, moved_qid = in_progress(rt, queue, attempts=3)
    foreign, foreign_qid = in_progress(rt, queue, attempts=3)
    await rescue_expired(rt, 100)
    with rt.uow() as uow:  # we believed the queue still had DISTRIBUTED
        uow.session.execute(update(Job).where(Job.id == moved).values(queue_status="DISTRIBUTED"))
        uow.commit()
    queue.set_status(foreign_qid, "CANCELLED")  # the queue's owner ended it meanwhile
    lines = {x.queue_task_id: x.action for x in await send_unreported(rt, (), 0, 100)}
    assert lines == {moved_qid: "reported", foreign_qid: "conflict"}
    assert queue.task(moved_qid)["status"] == "FAILED"
    assert queue.task(foreign_qid)["status"] == "CANCELLED"
    assert job(rt, foreign).queue_status == "CANCELLED"  # recorded, so it is not resent


async def test_an_ending_one_sweep_is_sending_is_skipped_by_another(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    job_id, qid = in_progress(rt, queue, attempts=3)
    await rescue_expired(rt, 100)
    with rt.uow() as first:  # the first sweep holds the ending while its PATCH is out
        assert first.sweep.claim_unreported(job_id) is not None

        assert await send_unreported(rt, (job_id,), 0, 100) == []

        assert queue.patches == []
    lines = await send_unreported(rt, (job_id,), 0, 100)  # once it let go, it is sent once
    assert [x.action for x in lines] == ["reported"]
    assert [p.task_id for p in queue.patches] == [qid]


async def test_two_whole_sweeps_at_once_end_and_report_each_job_once(
    rt: Runtime, queue: SimulatedQueue
) -> None:
    jobs = [in_progress(rt, queue, attempts=3) for _ in range(4)]

    async def one_sweep() -> list[str]:
        rescued = await rescue_expired(rt, 100)
        told = await send_unreported(rt, rescued.ended_job_ids, 0, 100)
        return [x.action for x in (*rescued.lines, *told)]

    a, b = await asyncio.gather(one_sweep(), one_sweep())

    assert sorted(a + b) == ["FAILED"] * 4 + ["reported"] * 4
    assert isinstance(rt.events, RecordingEvents)
    assert sorted(rt.events.jobs()) == sorted((qid, "FAILED") for _, qid in jobs)
    patched = [p.task_id for p in queue.patches]
    assert sorted(patched) == sorted(qid for _, qid in jobs)  # one PATCH each, no 409s
    assert all(queue.finished_count(qid) == 1 for _, qid in jobs)
