"""The coalescing batcher: requests made in the same event-loop turn share a batch, requests
made while a batch runs wait for the next one (or, with two in flight, go in a second batch
at once), and each key gets its own result or failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from agent_dispatch.services.plan_batching import Batcher, batcher_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Recorder:
    """A batch function that records its batches and can be held mid-batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, keys: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(keys))
        await self.gate.wait()
        return [ValueError(f"odd {k}") if k % 2 else k * 10 for k in keys]


async def test_requests_of_one_turn_share_a_batch_and_each_gets_its_own_result() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run)

    results = await asyncio.gather(*(batcher.load(k) for k in range(4)), return_exceptions=True)

    assert run.batches == [[0, 1, 2, 3]]
    assert results[0] == 0 and results[2] == 20
    assert [str(r) for r in results[1::2]] == ["odd 1", "odd 3"]  # failed alone


async def test_requests_made_while_a_batch_runs_go_in_the_next_batch() -> None:
    run = Recorder()
    run.gate.clear()
    batcher: Batcher[int, int] = Batcher(run, max_batch=3)
    first = asyncio.gather(*(batcher.load(k) for k in (0, 2)))
    await asyncio.sleep(0.01)  # the first batch is under way, held at the gate
    later = asyncio.gather(*(batcher.load(k) for k in (4, 6, 8, 10)))
    await asyncio.sleep(0.01)
    run.gate.set()

    assert await first == [0, 20]
    assert await later == [40, 60, 80, 100]
    assert run.batches == [[0, 2], [4, 6, 8], [10]]  # queued, then cut at max_batch


async def test_two_in_flight_split_a_turns_requests_and_run_at_once() -> None:
    run = Recorder()
    run.gate.clear()
    batcher: Batcher[int, int] = Batcher(run, in_flight=2, split_at=4)
    first = asyncio.gather(*(batcher.load(k) for k in range(0, 16, 2)))
    await asyncio.sleep(0.01)

    assert run.batches == [[0, 2, 4, 6], [8, 10, 12, 14]]  # both under way, held at the gate
    later = asyncio.gather(*(batcher.load(k) for k in (16, 18, 20, 22, 24)))
    await asyncio.sleep(0.01)
    assert len(run.batches) == 2  # no third batch while two run
    run.gate.set()

    assert await first == [k * 10 for k in range(0, 16, 2)]
    assert await later == [160, 180, 200, 220, 240]
    assert sorted(k for b in run.batches[2:] for k in b) == [16, 18, 20, 22, 24]


async def test_fewer_than_split_at_wait_for_the_batch_under_way_and_go_together() -> None:
    run = Recorder()
    run.gate.clear()
    batcher: Batcher[int, int] = Batcher(run, in_flight=2, split_at=4)
    first = asyncio.ensure_future(batcher.load(0))
    await asyncio.sleep(0.01)
    trickle = asyncio.gather(*(batcher.load(k) for k in (2, 4, 6)))
    await asyncio.sleep(0.01)

    assert run.batches == [[0]]  # three are too few for a batch beside the one under way
    run.gate.set()
    assert await first == 0 and await trickle == [20, 40, 60]
    assert run.batches == [[0], [2, 4, 6]]


async def test_one_in_flight_never_runs_two_batches_at_once() -> None:
    running, most = 0, 0

    async def counted(keys: Sequence[int]) -> list[int | Exception]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.005)
        running -= 1
        return list(keys)

    batcher: Batcher[int, int] = Batcher(counted, max_batch=2)
    loads = []
    for k in range(9):
        loads.append(asyncio.ensure_future(batcher.load(k)))
        await asyncio.sleep(0.002)  # requests arrive while batches run
    assert await asyncio.gather(*loads) == list(range(9))
    assert most == 1


async def test_a_batch_that_raises_fails_each_of_its_keys_and_the_next_batch_runs() -> None:
    calls: list[list[int]] = []

    async def broken(keys: Sequence[int]) -> list[int | Exception]:
        calls.append(list(keys))
        if len(calls) == 1:
            raise ConnectionError("database gone")
        return list(keys)

    batcher: Batcher[int, int] = Batcher(broken)
    failed = await asyncio.gather(batcher.load(1), batcher.load(2), return_exceptions=True)
    assert [type(e) for e in failed] == [ConnectionError, ConnectionError]
    assert await batcher.load(3) == 3


async def test_a_cancelled_request_leaves_the_others_of_its_batch_answered() -> None:
    run = Recorder()
    run.gate.clear()
    batcher: Batcher[int, int] = Batcher(run)
    gone = asyncio.ensure_future(batcher.load(2))
    kept = asyncio.ensure_future(batcher.load(4))
    await asyncio.sleep(0.01)
    gone.cancel()
    run.gate.set()
    assert await kept == 40
    assert gone.cancelled()


async def test_one_batcher_per_loop_and_deps() -> None:
    class Deps:
        pass

    async def run(deps: Deps, keys: Sequence[int]) -> list[int | Exception]:
        return list(keys)

    a, b = Deps(), Deps()
    assert batcher_for(a, run) is batcher_for(a, run)
    assert batcher_for(a, run) is not batcher_for(b, run)
    assert await batcher_for(b, run).load(7) == 7
