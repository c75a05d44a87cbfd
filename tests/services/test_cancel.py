"""An operator's cancel on SQLite, a loopback queue and agent farm."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent_dispatch.db.types import utcnow
from agent_dispatch.services.cancel import QueueAnswer, cancel_job
from agent_dispatch.services.errors import Conflict, NotFound
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.reliability import attempts_of, in_progress, job, rows
from tests.support.service_deps import TestDeps

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_cancelling_a_running_job_stops_its_agent_and_tells_the_queue(
    deps: TestDeps, queue: SimulatedQueue, farm: AgentFarm
) -> None:
    farm.add("busy", "slow:delay=30")
    job_id, qid = in_progress(
        deps, queue, agent_url=farm.url_for("busy"), started_ago=0, lease_lost=False
    )

    done = await cancel_job(deps, qid)

    assert done.message() == f"cancelled job {qid}: 1 agent call(s) stopped, queue told"
    assert done.queue is QueueAnswer.TOLD
    after = job(deps, job_id)
    assert (after.status, after.queue_status, after.lease_token) == ("CANCELLED", "CANCELLED", None)
    assert [r.status for r in rows(deps, job_id)] == ["CANCELLED", "CANCELLED"]
    assert attempts_of(deps, job_id) == ["CANCELLED"]
    assert [c.agent for c in farm.cancels] == ["busy"]
    assert queue.task(qid)["status"] == "CANCELLED"
    assert deps.events.jobs() == [(qid, "CANCELLED")]


async def test_an_unknown_job_is_not_found_and_a_finished_one_is_a_conflict(
    deps: TestDeps, queue: SimulatedQueue
) -> None:
    _, qid = in_progress(deps, queue, lease_lost=False)
    await cancel_job(deps, qid)

    with pytest.raises(NotFound, match=r"^no job 'nope'$"):
        await cancel_job(deps, "nope")
    with pytest.raises(Conflict, match=rf"^job {qid} is already CANCELLED$"):
        await cancel_job(deps, qid)
    assert len(deps.events.jobs()) == 1


async def test_a_cancel_the_queue_cannot_take_now_is_left_to_the_outbox(
    make_deps: Callable[..., TestDeps], queue: SimulatedQueue
) -> None:
    down = make_deps()  # its queue URL has nothing listening
    job_id, qid = in_progress(down, queue, lease_lost=False)

    done = await cancel_job(down, job_id)

    assert done.queue is QueueAnswer.DEFERRED and done.queue_detail
    assert done.message().startswith(
        f"cancelled job {qid}: 1 agent call(s) stopped, queue not told"
    )
    after = job(down, job_id)
    assert (after.status, after.queue_status) == ("CANCELLED", "IN_PROGRESS")
    with down.uow() as uow:
        assert uow.sweep.unreported(utcnow(), 10, (job_id,)) == [job_id]


async def test_a_queue_that_ended_the_task_itself_keeps_its_ending(
    deps: TestDeps, queue: SimulatedQueue
) -> None:
    job_id, qid = in_progress(deps, queue, lease_lost=False)
    queue.set_status(qid, "COMPLETED")

    done = await cancel_job(deps, qid)

    assert done.queue is QueueAnswer.REFUSED and "COMPLETED" in done.queue_detail
    assert job(deps, job_id).status == "CANCELLED"
    assert queue.task(qid)["status"] == "COMPLETED"
