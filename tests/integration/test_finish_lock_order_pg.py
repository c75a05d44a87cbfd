"""A job's end takes its agents' row locks in one order, on real PostgreSQL: a finish whose
winner's row closed earlier and whose losers close now does not deadlock with another
transaction that holds the winner's agent and then wants a loser's (seen at 20 jobs at once
on three agents: 18 of 250 jobs never completed before the fix)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import select, text, update

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Agent
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.lifecycle import PlanKind
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import AgentRunStatus, JobStatus
from agent_dispatch.services import deps as deps_module
from agent_dispatch.services.finishing import finish_job
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.planning import Plan
from agent_dispatch.services.taking import Taken, take_job
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.reliability import add_agent, claim, decisions, store

pytestmark = [pytest.mark.postgres]


async def taken_with_a_winner(rt: Runtime, queue: SimulatedQueue) -> tuple[Taken, str, list[str]]:
    """A job on three agents, in agent id order (the order every transaction locks them in):
    the first's call COMPLETED (its row closed), the other two still WORKING."""
    ids = sorted(add_agent(rt, f"a{i}") for i in (1, 2, 3))
    task = queue.add_task(title="t", category="general")
    job_id = store(rt, task["id"])
    lease = claim(rt, task["id"])
    spec = JobSpec(queue_task_id=task["id"], title="t", category="general")
    plan = Plan(PlanKind.DISPATCH, tuple(decisions(*((i, f"a{n}") for n, i in enumerate(ids, 1)))))
    taken = await take_job(rt, Claim(lease, job_id, spec, JobStatus.OPEN), plan, None)
    assert isinstance(taken, Taken)
    rows = {a.agent_id: a.row_id for a in taken.distribution.assignments}
    with rt.uow() as uow:
        for agent_id in ids:
            uow.distributions.move_agent(lease, rows[agent_id], AgentRunStatus.WORKING)
        uow.distributions.move_agent(
            lease, rows[ids[0]], AgentRunStatus.COMPLETED, result={"ok": 1}, latency_ms=5.0
        )
        uow.commit()
    return taken, rows[ids[0]], ids


async def test_a_finish_and_a_transaction_holding_the_winners_agent_do_not_deadlock(
    rt: Runtime, queue: SimulatedQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken, winner_row, (first, _, last) = await taken_with_a_winner(rt, queue)
    victims: list[BaseException] = []
    original = deps_module.must_retry

    def counting(exc: BaseException) -> bool:
        retry = original(exc)
        if retry:
            victims.append(exc)
        return retry

    monkeypatch.setattr(deps_module, "must_retry", counting)
    holding, other_error = threading.Event(), []

    def other_transaction() -> None:
        # Holds the winner's agent, then wants a loser's once the finish below has started,
        # in id order as every transaction does: a finish that closed the losers' rows before
        # locking the winner's agent holds that loser's row lock by then.
        with rt.engine.connect() as conn:
            try:
                conn.execute(select(Agent.id).where(Agent.id == first).with_for_update())
                holding.set()
                time.sleep(0.6)
                conn.execute(update(Agent).where(Agent.id == last).values(runs=Agent.runs + 0))
                conn.commit()
            except Exception as exc:  # a deadlock's victim: the finish is then fine, we are not
                other_error.append(exc)
                conn.rollback()

    worker = threading.Thread(target=other_transaction)
    worker.start()
    assert holding.wait(5)
    end = await finish_job(rt, taken, winner_row, utcnow())
    await asyncio.to_thread(worker.join, 10)
    assert end.status is JobStatus.COMPLETED
    assert other_error == [] and victims == []
    with rt.engine.connect() as conn:  # and the kept in-flight counters are all back to zero
        assert conn.execute(text("SELECT sum(in_flight) FROM agents")).scalar() == 0
