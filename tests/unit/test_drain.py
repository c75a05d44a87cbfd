"""services.drain against an in-memory queue whose cursors are offsets into the OPEN list."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from agent_dispatch.clients.listing_writes import ListingWrites
from agent_dispatch.services.drain import Drain, Listing


class OffsetQueue:
    """OPEN task ids, oldest first; nextCursor is an index into the current OPEN list."""

    def __init__(self, ids: list[str], page_size: int) -> None:
        self.open = list(ids)
        self.page_size = page_size
        self.fetches = 0
        self.arrivals: list[str] = []  # added at the front, one per fetch

    async def fetch(self, cursor: str | None) -> Listing[str]:
        self.fetches += 1
        if self.arrivals:
            self.open.insert(0, self.arrivals.pop(0))
        start = int(cursor or 0)
        end = start + self.page_size
        return Listing(self.open[start:end], str(end) if end < len(self.open) else None)

    def take(self, task_id: str) -> None:
        self.open.remove(task_id)


def ids(n: int, prefix: str = "t") -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


async def test_one_pass_over_shifting_offsets_misses_tasks_that_later_passes_find() -> None:
    queue = OffsetQueue(ids(200), page_size=50)
    drain = Drain(queue.fetch, key=lambda i: i)
    taken: Counter[str] = Counter()

    async for task_id in drain.items():
        queue.take(task_id)  # our own take shifts every later offset
        taken[task_id] += 1

    assert sorted(taken) == ids(200)
    assert set(taken.values()) == {1}
    assert queue.open == []
    # Pass 1 read offsets 0, 50 (of a list already 50 shorter) and stopped: more passes
    # were needed, and the last one found nothing new.
    assert drain.passes > 2
    assert drain.judged == 200


async def test_unservable_tasks_are_yielded_once_and_the_drain_ends() -> None:
    queue = OffsetQueue(ids(30), page_size=7)
    drain = Drain(queue.fetch, key=lambda i: i)
    yielded: Counter[str] = Counter()

    async for task_id in drain.items():
        yielded[task_id] += 1
        if int(task_id[1:]) % 3:  # two of three can be served; the rest stay OPEN
            queue.take(task_id)

    assert sorted(yielded) == ids(30) and set(yielded.values()) == {1}
    assert queue.open == [t for t in ids(30) if int(t[1:]) % 3 == 0]


async def test_a_stable_queue_needs_one_pass_and_one_pass_to_confirm() -> None:
    queue = OffsetQueue(ids(20), page_size=5)
    drain = Drain(queue.fetch, key=lambda i: i)

    seen = [task_id async for task_id in drain.items()]  # nothing is taken: offsets hold

    assert seen == ids(20)
    assert (drain.passes, drain.pages) == (2, 8)


async def test_tasks_arriving_ahead_of_read_pages_are_found_by_a_later_pass() -> None:
    queue = OffsetQueue(ids(40), page_size=10)
    queue.arrivals = ids(15, prefix="new")
    drain = Drain(queue.fetch, key=lambda i: i)
    taken: Counter[str] = Counter()

    async for task_id in drain.items():
        queue.take(task_id)
        taken[task_id] += 1

    assert sorted(taken) == sorted(ids(40) + ids(15, prefix="new"))
    assert set(taken.values()) == {1}


async def test_rejected_items_without_an_id_are_keyed_by_hash_and_end_the_drain() -> None:
    # Items that can never leave the OPEN list (no id to report them by): keyed by content.
    bad = [f'{{"title": "no id {i}"}}' for i in range(3)]
    queue = OffsetQueue([*bad, *ids(10)], page_size=4)
    drain = Drain(queue.fetch, key=lambda i: ("raw", hash(i)) if i.startswith("{") else i)
    yielded: Counter[str] = Counter()

    async for item in drain.items():
        yielded[item] += 1
        if not item.startswith("{"):
            queue.take(item)

    assert set(yielded.values()) == {1} and len(yielded) == 13
    assert queue.open == bad
    assert drain.passes <= 4


async def test_a_cursor_that_repeats_within_a_pass_ends_that_pass() -> None:
    calls: list[str | None] = []

    async def looping(cursor: str | None) -> Listing[str]:
        calls.append(cursor)
        return Listing(["a", "b"] if cursor is None else ["c"], "again")

    drain = Drain(looping, key=lambda i: i)
    seen = [i async for i in drain.items()]

    assert seen == ["a", "b", "c"]
    # Each pass reads the first page and "again" once; "again" pointing at itself ends it.
    assert calls == [None, "again", None, "again"]


async def test_max_passes_bounds_a_queue_that_never_runs_dry() -> None:
    counter = iter(range(10_000))

    async def endless(cursor: str | None) -> Listing[int]:
        return Listing([next(counter)], None)

    drain = Drain(endless, key=lambda i: i, max_passes=5)
    seen = [i async for i in drain.items()]

    assert seen == [0, 1, 2, 3, 4]
    assert drain.passes == 5


class LateTakes(OffsetQueue):
    """Our takes land late, as they do while a busy run plans: each is under way (counted in
    `writes`) until two more pages have been read, then leaves the OPEN list."""

    def __init__(self, ids: list[str], page_size: int) -> None:
        super().__init__(ids, page_size)
        self.writes = Settling(self)
        self.under_way: list[tuple[int, str]] = []  # (lands after this many fetches, id)

    async def fetch(self, cursor: str | None) -> Listing[str]:
        page = await super().fetch(cursor)
        self.land(lambda due: due <= self.fetches)  # between this page and the next
        return page

    def take(self, task_id: str) -> None:
        self.writes.started += 1
        self.writes.in_flight += 1
        self.under_way.append((self.fetches + 2, task_id))

    def land(self, due: Callable[[int], bool]) -> None:
        for when, task_id in [w for w in self.under_way if due(w[0])]:
            self.under_way.remove((when, task_id))
            super().take(task_id)
            self.writes.in_flight -= 1


class Settling(ListingWrites):
    def __init__(self, queue: LateTakes) -> None:
        super().__init__()
        self.queue = queue

    async def settled(self) -> None:
        self.queue.land(lambda due: True)  # their answers arrive while the drain waits


async def drain_late_takes(*, tracked: bool) -> LateTakes:
    queue = LateTakes(ids(12), page_size=3)
    drain = Drain(queue.fetch, key=lambda i: i, own_writes=queue.writes if tracked else None)
    async for task_id in drain.items():
        queue.take(task_id)
    queue.land(lambda due: True)
    return queue


async def test_takes_landing_during_the_last_pass_cannot_hide_a_task_from_the_run() -> None:
    # A pass that finds nothing new while our takes still land is no proof: each landing
    # take slides the next unread task onto a page already read. Untracked, tasks are lost.
    assert len((await drain_late_takes(tracked=False)).open) == 3

    queue = await drain_late_takes(tracked=True)

    assert queue.open == []  # every task was yielded (and so taken)
    assert queue.writes.started == 12 and queue.writes.in_flight == 0


class SizedQueue(OffsetQueue):
    """Pages as large as the drain asks for (its `limit`), each request's size recorded."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(ids, page_size=0)
        self.drain: Drain[str] | None = None
        self.sizes: list[int] = []

    async def fetch(self, cursor: str | None) -> Listing[str]:
        assert self.drain is not None
        self.page_size = self.drain.limit
        self.sizes.append(self.page_size)
        return await super().fetch(cursor)


async def test_pages_that_bring_nothing_to_do_grow_and_a_page_with_work_shrinks_them() -> None:
    queue = SizedQueue(ids(200))
    drain = Drain(queue.fetch, key=lambda i: i, page_size=10, max_page_size=40)
    queue.drain = drain
    taken: list[str] = []

    async for batch in drain.batches():
        # The first 150 are a backlog no agent serves: nothing to do, the drain is told so.
        work = [t for t in batch if int(t[1:]) >= 150]
        if not work:
            drain.quiet()
        for t in work:
            queue.take(t)
            taken.append(t)

    assert sorted(taken) == ids(200)[150:]
    # Pass 1: 10, 20, 40, 40, 40 hold the 150 waiting (no work), so the page with work is
    # asked for at 40 too; after it, pages are back to 10.
    assert queue.sizes[:7] == [10, 20, 40, 40, 40, 40, 10]
    # Each pass starts small; the confirming pass (nothing new) reads the 150 in 5 pages.
    assert queue.sizes[-5:] == [10, 20, 40, 40, 40]
    assert drain.passes == 3 and drain.pages == len(queue.sizes) == 17
    assert drain.judged == 200


async def test_without_quiet_pages_keep_their_size_while_each_brings_something_new() -> None:
    queue = SizedQueue(ids(30))
    drain = Drain(queue.fetch, key=lambda i: i, page_size=10, max_page_size=40)
    queue.drain = drain

    seen = [t async for t in drain.items()]

    assert seen == ids(30)
    # The confirming pass: its first page brings nothing new, so the next one is larger.
    assert queue.sizes == [10, 10, 10, 10, 20]
