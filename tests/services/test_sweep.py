"""The sweep's services on SQLite and a loopback queue: rescue, stop, reconcile, outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import update

from agent_dispatch.db.models import Job
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.outbox import send_unreported
from agent_dispatch.services.sweep import (
    SweepAction,
    reconcile_stale_open,
    rescue_expired,
    stop_abandoned,
)
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.reliability import (
    add_agent,
    age_lease,
    attempts_of,
    claim,
    decisions,
    in_progress,
    job,
    rows,
    store,
)
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_lost_workers_job_is_handed_back_with_its_agent_work_closed(
    deps: TestDeps, queue: SimulatedQueue
) -> None:
    job_id, qid = in_progress(deps, queue)

    rescued = await rescue_expired(deps, 100)

    assert [(x.queue_task_id, x.action) for x in rescued.lines] == [(qid, SweepAction.REQUEUED)]
    # The call past its time limit timed out; the one never started is merely cancelled.
    assert [r.status for r in rows(deps, job_id)] == ["TIMEOUT", "CANCELLED"]
    assert attempts_of(deps, job_id) == ["ABANDONED"]
    after = job(deps, job_id)
    assert (after.status, after.lease_token) == ("IN_PROGRESS", None)
    assert rescued.ended_job_ids == () and deps.events.jobs() == []  # nothing ended
    with deps.uow() as uow:
        assert len(uow.jobs.claim_rescued("w2", 300, utcnow(), 10)) == 1
        uow.commit()
    assert (await rescue_expired(deps, 100)).lines == ()  # a live lease is never touched


async def test_spent_and_expired_jobs_end_and_each_ending_is_announced_once(
    deps: TestDeps, queue: SimulatedQueue
) -> None:
    _, spent = in_progress(deps, queue, attempts=3)
    _, late = in_progress(deps, queue, expires_at=utcnow() - dt.timedelta(seconds=1))

    rescued = await rescue_expired(deps, 100)
    again = await rescue_expired(deps, 100)

    actions = {x.queue_task_id: x.action for x in rescued.lines}
    assert actions == {spent: SweepAction.FAILED, late: SweepAction.EXPIRED}
    assert sorted(deps.events.jobs()) == sorted([(spent, "FAILED"), (late, "EXPIRED")])
    assert again.lines == ()


async def test_calls_still_running_at_an_agent_are_told_to_stop(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm
) -> None:
    farm.add("busy", "slow:delay=30")
    _, qid = in_progress(deps, queue, agent_url=farm.url_for("busy"))

    rescued = await rescue_expired(deps, 100)

    assert [c.agent_name for c in rescued.calls] == [f"a1-{qid}"]  # the WORKING one only
    assert await stop_abandoned(deps, rescued.calls) == 1
    assert [c.agent for c in farm.cancels] == ["busy"]


async def test_a_call_that_cannot_be_cancelled_counts_as_unconfirmed(
    deps: TestDeps, queue: SimulatedQueue
) -> None:
    in_progress(deps, queue)  # its agent URL has nothing listening
    rescued = await rescue_expired(deps, 100)
    assert len(rescued.calls) == 1
    assert await stop_abandoned(deps, rescued.calls) == 0


def stale_open(deps: TestDeps, qid: str) -> str:
    """An OPEN job whose worker reserved an agent, then died before the take."""
    job_id = store(deps, qid)
    agent = add_agent(deps, f"agent-{qid}")
    lease = claim(deps, qid)
    with deps.uow() as uow:
        uow.distributions.create(lease, decisions((agent, "a")), utcnow())
        uow.commit()
    age_lease(deps, job_id)
    return job_id


@pytest.mark.parametrize(
    ("on_queue", "action", "local", "announced"),
    [
        ("OPEN", SweepAction.RELEASED, "OPEN", []),
        ("IN_PROGRESS", SweepAction.RESCUED, "DISTRIBUTED", ["DISTRIBUTED"]),
        ("CANCELLED", SweepAction.MIRRORED, "CANCELLED", ["CANCELLED"]),
        (None, SweepAction.MIRRORED, "CANCELLED", ["CANCELLED"]),  # gone from the queue
    ],
)
async def test_a_stale_open_job_follows_the_queue_and_frees_its_agent(
    deps: TestDeps,
    queue: SimulatedQueue,
    on_queue: str | None,
    action: SweepAction,
    local: str,
    announced: list[str],
) -> None:
    qid = "task-gone"
    if on_queue is not None:
        qid = queue.add_task(title="t", category="general")["id"]
        queue.set_status(qid, on_queue)
    job_id = stale_open(deps, qid)

    lines = await reconcile_stale_open(deps, 100)

    assert [x.action for x in lines] == [action]
    after = job(deps, job_id)
    assert (after.status, after.lease_token) == (local, None)
    assert [r.status for r in rows(deps, job_id)] == ["CANCELLED"]
    assert [status for _, status in deps.events.jobs()] == announced


async def test_a_stale_open_job_waits_while_the_queue_cannot_be_asked(
    make_deps: Callable[..., TestDeps], queue: SimulatedQueue
) -> None:
    down = make_deps()  # its queue URL has nothing listening
    qid = queue.add_task(title="t", category="general")["id"]
    job_id = stale_open(down, qid)

    lines = await reconcile_stale_open(down, 100)

    assert [x.action for x in lines] == [SweepAction.DEFERRED]
    after = job(down, job_id)
    assert after.status == "OPEN" and after.lease_token is not None  # the next sweep looks
    assert after.lease_expires_at is not None and after.lease_expires_at <= utcnow()


async def test_the_outbox_tells_each_ending_once_then_has_nothing_left(
    deps: TestDeps, queue: SimulatedQueue
) -> None:
    job_id, qid = in_progress(deps, queue, attempts=3)
    rescued = await rescue_expired(deps, 100)

    lines = await send_unreported(deps, rescued.ended_job_ids, settle_seconds=3600)

    assert [(x.queue_task_id, x.action) for x in lines] == [(qid, SweepAction.REPORTED)]
    assert queue.task(qid)["status"] == "FAILED"
    assert job(deps, job_id).queue_status == "FAILED"
    assert await send_unreported(deps, (), settle_seconds=0) == []


async def test_the_outbox_leaves_a_fresh_ending_to_the_worker_reporting_it(
    deps: TestDeps, queue: SimulatedQueue
) -> None:
    in_progress(deps, queue, attempts=3)
    await rescue_expired(deps, 100)

    assert await send_unreported(deps, (), settle_seconds=3600) == []
    assert [p.task_id for p in queue.patches] == []


async def test_an_ending_of_a_task_gone_from_the_queue_is_not_sent_again(
    deps: TestDeps, queue: SimulatedQueue
) -> None:
    job_id = store(deps, "task-never-there")
    with deps.uow() as uow:
        uow.jobs.transition_unleased(job_id, JobStatus.CANCELLED, utcnow())
        uow.commit()

    lines = await send_unreported(deps, (job_id,))

    assert [x.action for x in lines] == [SweepAction.GONE]
    assert job(deps, job_id).queue_status == "CANCELLED"
    assert await send_unreported(deps, (job_id,)) == []


async def test_an_ending_the_queue_cannot_take_now_stays_in_the_outbox(
    make_deps: Callable[..., TestDeps], queue: SimulatedQueue
) -> None:
    down = make_deps()  # its queue URL has nothing listening
    job_id, _ = in_progress(down, queue, attempts=3)
    await rescue_expired(down, 100)

    lines = await send_unreported(down, (job_id,))

    assert [x.action for x in lines] == [SweepAction.DEFERRED]
    assert job(down, job_id).queue_status == "IN_PROGRESS"
    with down.uow() as uow:  # still untold: the next sweep sends it
        uow.session.execute(
            update(Job).where(Job.id == job_id).values(updated_at=utcnow() - dt.timedelta(1))
        )
        uow.commit()
        assert uow.sweep.unreported(utcnow(), 10) == [job_id]
