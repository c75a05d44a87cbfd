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


async def test_a_hand_gives_back_its_held_and_queued_slots_when_the_run_ends() -> None:
    slots = RaceSlots(2)
    hand = SlotHand(slots)
    assert hand.take() and hand.take() and not hand.take()
    hand.keep(1)  # one step did not start after all
    hand.queue()
    slots.release()  # the step that started ended: its slot passes to the queued hand
    await asyncio.sleep(0)
    assert hand.waiting is not None and hand.waiting.done()
    hand.arrived()
    assert hand.held == 2 and slots.in_use == 2
    await hand.let_go()
    assert slots.in_use == 0 and hand.held == 0
