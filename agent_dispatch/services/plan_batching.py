"""Coalescing: plans asked for at about the same time share one transaction (DataLoader-style).

A run dispatches up to JOB_CONCURRENCY jobs at once, each planning on its own; a plan's cost
is mostly its transaction (round trips and a commit's WAL flush), not its agents. So the
first request of a quiet moment waits one event-loop turn for the others made in that turn,
and requests made while a batch is in flight queue up for the next one: under load, batches
grow with the load and the transactions per plan fall; alone, a plan waits for nothing.

Up to `in_flight` batches run at once, the waiting split evenly between the batches that
start together. Planning runs two on PostgreSQL: at 100,000 agents a plan is mostly the
database's work (each job's pool query visits a large category's rows), and a second batch
on a second connection uses the other core (benchmarks/matching_scale.py, side by side: 181
plans/s with one, 300 with two). A batch beside another starts only with `split_at` or more:
a dispatch run's plans come one per ended job, and a batch of one beside a busy one costs a
transaction per plan again, the cost batching removes.

A batch function returns one entry per key: the value, or the exception that failed that key
alone. One batcher per (event loop, deps): the futures and tasks belong to one loop.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MAX_BATCH = 64  # keys per batch at most: bounds a transaction's rows and locks' duration
SPLIT_AT = 8  # requests waiting before a batch starts beside one under way


class Batcher(Generic[K, V]):
    def __init__(
        self,
        run: Callable[[Sequence[K]], Awaitable[Sequence[V | Exception]]],
        max_batch: int = MAX_BATCH,
        in_flight: int = 1,
        split_at: int = SPLIT_AT,
    ) -> None:
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._split_at = split_at
        self._waiting: list[tuple[K, asyncio.Future[V]]] = []
        self._drains = 0  # drain tasks alive, at most in_flight
        self._settling = 0  # of them, those with a batch under way
        self._tasks: set[asyncio.Task[None]] = set()  # strong refs: the loop keeps weak ones

    async def load(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, future))
        if self._drains == 0 or (
            self._drains < self._in_flight and len(self._waiting) >= self._split_at
        ):
            self._drains += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # one turn: the requests made in this one join the batch
            # Beside a batch under way, only a batch of split_at or more; fewer wait for the
            # drain running it, which takes them when its batch is done.
            while self._waiting and (self._settling == 0 or len(self._waiting) >= self._split_at):
                # An even share for each drain not running a batch now (this one included).
                idle = self._drains - self._settling
                share = min(self._max_batch, math.ceil(len(self._waiting) / idle))
                batch = self._waiting[:share]
                del self._waiting[:share]
                self._settling += 1
                try:
                    await self._settle(batch)
                finally:
                    self._settling -= 1
        finally:
            self._drains -= 1

    async def _settle(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            results: Sequence[V | Exception] = await self._run([key for key, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} returned {len(results)} results")
        except Exception as exc:  # the batch as a whole: every key in it fails with it
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


_batchers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop,
    dict[tuple[int, int, int], tuple[weakref.ref[Any], Batcher[Any, Any]]],
] = weakref.WeakKeyDictionary()


def batcher_for(
    deps: Any,
    run: Callable[[Any, Sequence[K]], Awaitable[Sequence[V | Exception]]],
    in_flight: int = 1,
) -> Batcher[K, V]:
    """This event loop's batcher of `run` over `deps` with `in_flight` (made on first use).
    It holds `deps` weakly: a loop that outlives many of them (a test session's) keeps none
    alive."""
    per_loop = _batchers.setdefault(asyncio.get_running_loop(), {})
    key = (id(deps), id(run), in_flight)
    found = per_loop.get(key)
    if found is None or found[0]() is not deps:  # new, or an id reused after a deps died
        ref = weakref.ref(deps)

        async def run_batch(keys: Sequence[K]) -> Sequence[V | Exception]:
            alive = ref()
            if alive is None:  # (its callers hold it: unreachable while they wait)
                raise RuntimeError("planning's dependencies are gone")
            return await run(alive, keys)

        found = per_loop[key] = (ref, Batcher(run_batch, in_flight=in_flight))
    batcher: Batcher[K, V] = found[1]
    return batcher
