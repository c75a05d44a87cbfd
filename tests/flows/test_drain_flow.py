"""The dispatch flow drains queues whose cursors shift, and poison items never block it.

Real Prefect, real PostgreSQL, the loopback queue and agents over real HTTP. "Exactly once"
is read from the queue's counts of every take and terminal PATCH that reached it, accepted
or refused (a refused second PATCH would otherwise go unseen).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import QueueRejection
from agent_dispatch.flows.dispatch import DispatchParams, DispatchSummary, dispatch_flow
from agent_dispatch.simulators.queue import SimulatedQueue
from agent_dispatch.simulators.queue_store import CursorMode

pytestmark = [pytest.mark.flow, pytest.mark.slow]

# Enough for several pages and passes; each job costs its task runs, so no more than that.
SERVABLE = 60


def seed(
    queue: SimulatedQueue, servable: int, unservable_every: int = 0
) -> tuple[list[str], list[str]]:
    """`servable` tasks; with unservable_every=k, one task nobody can serve after every k."""
    good, unservable = [], []
    for i in range(servable):
        good.append(queue.add_task(title=f"t{i}", category="general", maxAgents=1)["id"])
        if unservable_every and i % unservable_every == 0:
            unservable.append(queue.add_task(title=f"u{i}", category="nobody", maxAgents=1)["id"])
    return good, unservable


def assert_each_taken_and_finished_once(queue: SimulatedQueue, task_ids: list[str]) -> None:
    statuses = Counter(queue.task(t)["status"] for t in task_ids)
    assert statuses == {"COMPLETED": len(task_ids)}
    takes = Counter(queue.take_attempts(t) for t in task_ids)
    finishes = Counter(queue.finish_attempts(t) for t in task_ids)
    assert takes == {1: len(task_ids)} and finishes == {1: len(task_ids)}


def list_requests(queue: SimulatedQueue) -> int:
    return sum(1 for r in queue.requests if r.method == "GET" and r.path == "/tasks")


def report(mode: str, summary: DispatchSummary, servable: int) -> None:
    print(  # the figures quoted in the README come from here (pytest -s)
        f"drain {mode}: taken {summary.taken}/{servable}, passes {summary.passes}, "
        f"pages {summary.pages}"
    )


@pytest.mark.parametrize("mode", ["stable", "offset"])
async def test_every_servable_task_is_taken_once_whatever_the_cursor_means(
    patient_rt: Runtime,
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    mode: CursorMode,
) -> None:
    for name in ("a", "b", "c"):
        add_agent(name, "fast:delay=0", max_concurrency=100)
    queue.set_cursor_mode(mode)
    good, unservable = seed(queue, SERVABLE, unservable_every=10)

    summary = await dispatch_flow(DispatchParams(page_size=15))

    report(mode, summary, SERVABLE)
    assert summary.stopped_reason is None
    assert summary.taken == SERVABLE
    assert_each_taken_and_finished_once(queue, good)
    # Unservable tasks were judged once in this run (planned once) and stay OPEN.
    outcomes = Counter(j.queue_task_id for j in summary.jobs if j.outcome == "UNSERVED")
    assert outcomes == dict.fromkeys(unservable, 1)
    assert all(queue.task(t)["status"] == "OPEN" for t in unservable)
    assert all(queue.take_attempts(t) == 0 for t in unservable)
    # It ended by itself: the last pass found nothing new, every page read is accounted for.
    assert summary.passes >= 2
    assert summary.pages == list_requests(queue)


@pytest.mark.parametrize("mode", ["stable", "offset"])
async def test_tasks_arriving_on_pages_already_read_are_taken_in_the_same_run(
    patient_rt: Runtime,
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    mode: CursorMode,
) -> None:
    for name in ("a", "b", "c"):
        add_agent(name, "fast:delay=0", max_concurrency=100)
    queue.set_cursor_mode(mode)
    seeded, arrivals = 40, 12  # fewer than SERVABLE: the arrivals are what is under test
    good, _ = seed(queue, seeded)
    queue.insert_while_listing(arrivals, per_list=3, category="general", maxAgents=1)

    summary = await dispatch_flow(DispatchParams(page_size=10))

    report(f"{mode} + {arrivals} arrivals", summary, seeded + arrivals)
    arrived = [t["id"] for t in queue.tasks_in("COMPLETED") if t["id"] not in set(good)]
    assert len(arrived) == arrivals
    assert summary.stopped_reason is None
    assert summary.taken == seeded + arrivals
    assert_each_taken_and_finished_once(queue, good + arrived)
    assert queue.counts()["OPEN"] == 0


async def test_max_jobs_still_caps_a_run_over_shifting_offsets(
    patient_rt: Runtime, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    add_agent("a", "fast:delay=0", max_concurrency=100)
    queue.set_cursor_mode("offset")
    good, _ = seed(queue, 30)

    first = await dispatch_flow(DispatchParams(max_jobs=12, page_size=5))
    second = await dispatch_flow(DispatchParams(page_size=5))

    assert (first.taken, second.taken) == (12, 18), (first.outcomes, second.outcomes)
    assert_each_taken_and_finished_once(queue, good)


def raw_task(task_id: str | None, **fields: object) -> str:
    item: dict[str, object] = {
        "title": "hostile",
        "category": "general",
        "status": "OPEN",
        "createdAt": "2026-01-01T00:00:00Z",
        "maxAgents": 1,
        **fields,
    }
    if task_id is not None:
        item["id"] = task_id
    return json.dumps(item)


def with_member(text: str, name: str, raw_value: str) -> str:
    return text[:-1] + f', "{name}": {raw_value}}}'


async def test_poison_items_between_good_ones_are_rejected_alone_and_the_run_exits_cleanly(
    patient_rt: Runtime, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    rt = patient_rt
    add_agent("a", "fast:delay=0", max_concurrency=50)
    queue.set_cursor_mode("offset")
    hostile = {
        "nul-description": raw_task("nul-description", description="a\x00b"),
        "deep-payload": with_member(raw_task("deep-payload"), "payload", "[" * 3000 + "]" * 3000),
        "huge-number": with_member(raw_task("huge-number"), "payload", '{"n": ' + "9" * 5000 + "}"),
        "surrogate-title": raw_task("surrogate-title", title="\udead"),
        "infinite": with_member(raw_task("infinite"), "payload", '{"x": 1e400}'),
        "wrong-type": raw_task("wrong-type", tags="not a list"),
    }
    no_id = raw_task(None, description="\x00 and no id")
    good = []
    for i, (task_id, text) in enumerate(hostile.items()):
        good.append(queue.add_task(title=f"good {i}", category="general", maxAgents=1)["id"])
        queue.add_raw_json(text, task_id=task_id)
    queue.add_raw_json(no_id)
    good.append(queue.add_task(title="last", category="general", maxAgents=1)["id"])

    summary = await dispatch_flow(DispatchParams(page_size=4))

    assert summary.stopped_reason is None  # `agent-dispatch run` exits 0
    assert summary.taken == len(good)
    assert_each_taken_and_finished_once(queue, good)
    assert summary.rejected == len(hostile) + 1  # once each, although passes re-read them
    for task_id in hostile:
        assert queue.task(task_id)["status"] == "FAILED"
        assert queue.finish_attempts(task_id) == 1
    assert (
        "description: contains a NUL character (U+0000)" in queue.task("nul-description")["error"]
    )
    assert "payload: nested deeper than 64 levels" in queue.task("deep-payload")["error"]
    with rt.uow() as uow:
        rows = uow.session.query(QueueRejection).all()
    assert sorted(r.queue_task_id or "-" for r in rows) == sorted([*hostile, "-"])
    assert all(r.reported for r in rows if r.queue_task_id)
