"""The loopback queue's cursor modes, arrivals, raw items and attempt counts, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agent_dispatch.simulators import SimulatedQueue


@pytest.fixture
def queue() -> Iterator[SimulatedQueue]:
    q = SimulatedQueue(token=None)
    with q.serve():
        yield q


@pytest.fixture
def client(queue: SimulatedQueue) -> Iterator[httpx.Client]:
    assert queue.url is not None
    with httpx.Client(base_url=queue.url) as c:
        yield c


def listed(
    client: httpx.Client, cursor: str | None = None, limit: int = 2
) -> tuple[list[str], str | None]:
    params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
    body = client.get("/tasks", params=params).json()
    return [t["id"] for t in body["tasks"]], body["nextCursor"]


def take(client: httpx.Client, task_id: str) -> int:
    body = {"status": "DISTRIBUTED", "expectedStatus": "OPEN"}
    return client.patch(f"/tasks/{task_id}", json=body).status_code


def test_stable_cursors_are_unmoved_by_takes(queue: SimulatedQueue, client: httpx.Client) -> None:
    ids = [queue.add_task()["id"] for _ in range(5)]
    first, cursor = listed(client)
    for task_id in first:
        take(client, task_id)

    second, _ = listed(client, cursor)

    assert second == ids[2:4]  # the page after the last one read, whatever was taken


def test_offset_cursors_skip_tasks_when_earlier_ones_are_taken(
    queue: SimulatedQueue, client: httpx.Client
) -> None:
    queue.set_cursor_mode("offset")
    ids = [queue.add_task()["id"] for _ in range(6)]
    first, cursor = listed(client)
    for task_id in first:
        take(client, task_id)

    second, last = listed(client, cursor)

    assert first == ids[:2]
    assert second == ids[4:6]  # ids[2:4] moved to offsets 0-1, a page already read
    assert last is None


def test_a_cursor_from_the_other_mode_is_refused(
    queue: SimulatedQueue, client: httpx.Client
) -> None:
    for _ in range(3):
        queue.add_task()
    _, stable_cursor = listed(client)
    queue.set_cursor_mode("offset")

    assert client.get("/tasks", params={"cursor": stable_cursor}).status_code == 400


def test_arrivals_land_ahead_of_pages_already_read(
    queue: SimulatedQueue, client: httpx.Client
) -> None:
    ids = [queue.add_task()["id"] for _ in range(4)]
    queue.insert_while_listing(3, per_list=2, category="late")

    first, cursor = listed(client)
    second, _ = listed(client, cursor)
    everything, _ = listed(client, limit=50)

    assert len(first) == 2 and set(first).isdisjoint(ids)  # two arrived before the first page
    assert second == ids[:2]
    assert len(everything) == 7 and everything[3:] == ids  # the third arrived ahead of all
    late = [t for t in queue.tasks_in("OPEN") if t["category"] == "late"]
    assert len(late) == 3


def test_raw_json_items_are_served_verbatim_and_can_be_patched(
    queue: SimulatedQueue, client: httpx.Client
) -> None:
    deep = '{"id": "deep", "payload": ' + "[" * 3000 + "]" * 3000 + "}"
    queue.add_raw_json(deep, task_id="deep")
    queue.add_raw_json('{"title": "x\\u0000", "n": ' + "9" * 5000 + "}")

    body = client.get("/tasks").content

    assert body == (
        b'{"tasks":['
        + deep.encode()
        + b',{"title": "x\\u0000", "n": '
        + b"9" * 5000
        + b'}],"nextCursor":null}'
    )
    failed = {"status": "FAILED", "expectedStatus": "OPEN", "error": "too deep"}
    assert client.patch("/tasks/deep", json=failed).status_code == 200
    assert queue.task("deep")["error"] == "too deep"


def test_every_take_and_terminal_patch_that_reaches_the_queue_is_counted(
    queue: SimulatedQueue, client: httpx.Client
) -> None:
    task_id = queue.add_task()["id"]
    queue.fail_next(1, 503, method="PATCH")  # a proxy failure: never reached the queue

    codes = [take(client, task_id), take(client, task_id), take(client, task_id)]
    done = {"status": "COMPLETED", "expectedStatus": "DISTRIBUTED", "result": 1}
    codes += [client.patch(f"/tasks/{task_id}", json=done).status_code for _ in range(2)]

    assert codes == [503, 200, 409, 200, 409]
    assert queue.take_attempts(task_id) == 2
    assert queue.finish_attempts(task_id) == 2  # the refused second finish is seen
    assert queue.finished_count(task_id) == 1  # while the accepted count cannot show it
    state = client.get("/_sim/state").json()
    assert state["takeAttempts"] == {task_id: 2}
    assert state["finishAttempts"] == {task_id: 2}
