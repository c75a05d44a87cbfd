"""The run's race slots: never more than their size held, first come first served, and a slot
never lost when its waiter is cancelled (a lost slot would stall the run's last steps)."""

from __future__ import annotations

import asyncio

from agent_dispatch.services.job_pool import RaceSlots, SlotHand


async def test_a_freed_slot_goes_to_the_first_waiter_not_to_a_newcomer() -> None:
    slots = RaceSlots(1)
    assert slots.try_acquire()
    first = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()
    assert not slots.try_acquire()  # handed to `first`, who has not run yet
    await first
    assert (slots.in_use, slots.peak) == (1, 1)
    slots.release()
    assert slots.in_use == 0 and slots.try_acquire()


async def test_a_waiter_cancelled_after_the_handover_passes_the_slot_on() -> None:
    slots = RaceSlots(1)
    assert slots.try_acquire()
    doomed = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # handed to `doomed`...
    doomed.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(doomed, return_exceptions=True)
    await asyncio.wait_for(second, 1)  # the slot went on to the next waiter
    assert slots.in_use == 1


async def test_a_waiter_cancelled_while_queued_leaves_the_queue() -> None:
    slots = RaceSlots(1)
    assert slots.try_acquire()
    queued = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)
    slots.release()
    assert slots.in_use == 0 and slots.try_acquire()


async def test_a_hand_queues_when_short_and_gives_back_what_it_did_not_use() -> None:
    slots = RaceSlots(2)
    hand = SlotHand(slots)
    assert hand.take(3) == 2 and hand.waiting is not None  # short by one: queued
    hand.give_back(1)  # one step did not start after all: its slot goes to the queue, ours
    await asyncio.sleep(0)
    assert hand.waiting.done() and slots.in_use == 2
    hand.arrived()
    assert hand.take(1) == 1 and hand.held == 0 and hand.waiting is None
    hand.give_back(2)  # the run's steps ended
    assert slots.in_use == 0


async def test_a_run_that_ends_while_queued_leaves_no_slot_behind() -> None:
    slots = RaceSlots(1)
    other = SlotHand(slots)
    assert other.take(1) == 1
    hand = SlotHand(slots)
    assert hand.take(1) == 0 and hand.waiting is not None
    slots.release()  # the other run's step ends: handed to our queued waiter...
    await hand.let_go()  # ...as our run ends: it is given back, not lost
    assert slots.in_use == 0 and slots.try_acquire()
