"""A backlog nobody can serve, end to end: real Prefect, PostgreSQL, loopback queue and agents.

The first run judges each task once; the next run leaves them alone (no plan, take or release
task run, no write); registering an agent that serves them dispatches them in the next run.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Job
from agent_dispatch.flows.dispatch import DispatchParams, DispatchSummary, dispatch_flow
from agent_dispatch.simulators.queue import SimulatedQueue

pytestmark = [pytest.mark.flow]


async def _run() -> tuple[DispatchSummary, list[str]]:
    """One dispatch run: its summary and the kinds of its task runs, one entry per run."""
    state = await dispatch_flow(DispatchParams(page_size=10), return_state=True)
    summary = await state.result()
    assert isinstance(summary, DispatchSummary)
    # The server records task runs from the events their engines send, a moment after the
    # fact: wait until it has one "fetch page" run per page the run says it read.
    deadline = time.monotonic() + 30
    while True:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )
        fetches = sum(1 for r in runs if r.name.startswith("fetch page"))
        if fetches >= summary.pages or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    return summary, sorted(re.sub(r"[ -][0-9a-f]+$", "", r.name) for r in runs)


def _jobs(rt: Runtime) -> dict[str, Job]:
    with rt.uow() as uow:
        jobs = uow.session.query(Job).all()
        uow.session.expunge_all()
    return {j.queue_task_id: j for j in jobs}


async def test_a_waiting_backlog_is_left_alone_until_an_agent_that_serves_it_arrives(
    patient_rt: Runtime, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("generalist", "fast:delay=0")
    legal = {queue.add_task(title=f"contract {i}", category="legal")["id"] for i in range(25)}
    general = queue.add_task(title="summary", category="general")["id"]

    first, _ = await _run()

    assert {j.queue_task_id: j.outcome for j in first.jobs} == {
        general: "COMPLETED",
        **dict.fromkeys(legal, "UNSERVED"),
    }
    judged = _jobs(patient_rt)
    assert all(
        "category 'legal' not in ['general']" in (judged[t].match_summary or "") for t in legal
    )

    second, task_runs = await _run()

    assert second.jobs == [] and second.waiting == 25 and second.taken == 0
    # Per page one read (the intake is a plain call in traced mode); nothing per task.
    assert set(task_runs) == {"fetch page", "lease-rescued-jobs"}
    assert task_runs.count("fetch page") <= 4
    again = _jobs(patient_rt)
    assert {t: again[t].updated_at for t in legal} == {t: judged[t].updated_at for t in legal}
    assert all(queue.task(t)["status"] == "OPEN" and queue.take_attempts(t) == 0 for t in legal)

    add_agent("lawyer", "fast:delay=0", categories=("legal",), max_concurrency=30)
    third, _ = await _run()

    assert {j.queue_task_id: (j.outcome, j.winner) for j in third.jobs} == dict.fromkeys(
        legal, ("COMPLETED", "lawyer")
    )
    assert third.waiting == 0
    assert all(queue.task(t)["status"] == "COMPLETED" for t in legal)
