"""A small bounded pool of jobs in flight, and the run's budget of races.

JOB_CONCURRENCY bounds two things in one run. The pool holds at most that many jobs (leased
and being driven), and `RaceSlots` lets at most that many plan -> take -> race -> finish
dispatches run at once: a plain job's, or one step's of a workflow. A workflow parent takes a
place in the pool but no race slot while its steps wait for theirs, so a parent can never sit
on the last slot its own steps need (no deadlock, however many parents there are). The pool
reserves a plain job's slot before the job is leased, so no leased job waits for one.

A run keeps counts per outcome for every job but the lines of only the last `KEPT_LINES`
jobs to end: a run over 10,000 jobs holds no more than one over a few hundred (the run's
artifact and summary show those lines and the totals; every job's line is logged as it ends).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from agent_dispatch.services.dispatching import NOT_TAKEN, JobLine, NotFinished
from agent_dispatch.services.intake import Claim

log = logging.getLogger(__name__)

# Lines kept per run for its summary and artifact: enough to read, bounded so memory is flat.
KEPT_LINES = 200


class RaceSlots:
    """At most `size` races at once. Waiters are served first come, first served, and a
    freed slot passes straight to the first of them, so a new job never jumps that queue."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self.peak = 0  # the most held at once (the run's figures)
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> bool:
        """Take a slot only if one is free and nobody is queued for it."""
        if self.in_use >= self.size or self._waiters:
            return False
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        return True

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # handed over as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # release() may have dropped it
                    self._waiters.remove(granted)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; in_use stays
                return
        self.in_use -= 1


class SlotHand:
    """One workflow run's share of the slots: its place in the queue (one waiter at a time)
    while ready steps wait, and the slot that came for them until the run uses it."""

    def __init__(self, slots: RaceSlots) -> None:
        self.slots = slots
        self.held = 0
        self.waiting: asyncio.Task[None] | None = None

    def take(self, n: int) -> int:
        """Slots for up to `n` steps: those in hand, then free ones; short of `n`, the run
        queues for the next one. Returns how many it has."""
        got = min(n, self.held)
        self.held -= got
        while got < n and self.slots.try_acquire():
            got += 1
        if got < n:
            self.queue()
        return got

    def give_back(self, n: int) -> None:
        """Slots taken for steps that did not start after all, and any left in hand: free
        for the next in the queue (a slot never idles in a run that has no step for it)."""
        for _ in range(n + self.held):
            self.slots.release()
        self.held = 0

    def queue(self) -> None:
        if self.waiting is None:
            self.waiting = asyncio.create_task(self.slots.acquire())

    def arrived(self) -> None:
        """The queued slot came (its task is done): held for the next ready step."""
        self.waiting, self.held = None, self.held + 1

    async def let_go(self) -> None:
        """The run ends: leave the queue and give back every slot in hand."""
        if self.waiting is not None:
            self.waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.waiting
            if not self.waiting.cancelled():  # granted as it was cancelled
                self.held += 1
            self.waiting = None
        self.give_back(0)


class Watcher(Protocol):
    """Told when jobs start and end (the run's progress)."""

    def add(self, n: int) -> None: ...

    async def job_done(self, line: JobLine) -> None: ...


class JobPool:
    """Jobs run concurrently; the pool says how many more may start (room and budget)."""

    def __init__(
        self,
        size: int,
        run: Callable[[Claim], Awaitable[JobLine]],
        watcher: Watcher,
        kept_lines: int = KEPT_LINES,
        on_line: Callable[[JobLine], None] | None = None,
    ) -> None:
        self.size = size
        self.slots = RaceSlots(size)  # shared with the workflow runs this pool drives
        self._run = run
        self._watcher = watcher
        self._active: set[asyncio.Task[JobLine]] = set()
        self._reserved = 0  # race slots held by room() for the jobs start() is given next
        self.lines: collections.deque[JobLine] = collections.deque(maxlen=kept_lines)
        self.outcomes: collections.Counter[str] = collections.Counter()  # every job's
        self._ended_taken = 0  # jobs that ended and were taken (not left on the queue)
        self._on_line = on_line  # told every line as it comes (the run's log)

    def start(self, claims: Iterable[Claim]) -> None:
        started = []
        for claim in claims:
            holds = self._reserved > 0  # a job leased beyond room() (never by the flows) waits
            self._reserved -= holds
            started.append(asyncio.create_task(self._guarded(claim, holds)))
        self._release_reserved()
        self._active.update(started)
        self._watcher.add(len(started))

    @property
    def taken(self) -> int:
        """Jobs this run took or is working on (not those it left on the queue)."""
        return len(self._active) + self._ended_taken

    def record(self, lines: Iterable[JobLine]) -> None:
        """Count each line's outcome; keep the line among the last `kept_lines`."""
        for line in lines:
            if self._on_line is not None:
                self._on_line(line)
            self.outcomes[line.outcome] += 1
            self._ended_taken += line.outcome not in NOT_TAKEN
            self.lines.append(line)

    def budget_left(self, max_jobs: int | None) -> int | None:
        return None if max_jobs is None else max(max_jobs - self.taken, 0)

    async def room(self, max_jobs: int | None) -> int:
        """How many jobs may start now, their race slots reserved for `start`: waits for a
        free place and a free slot; 0 once the budget is spent."""
        self._release_reserved()
        while True:
            self._collect(await self._settle(block=False))
            left = self.budget_left(max_jobs)
            if left == 0:
                return 0
            free = self.size - len(self._active)
            if free > 0:
                want = free if left is None else min(free, left)
                while self._reserved < want and self.slots.try_acquire():
                    self._reserved += 1
                if self._reserved:
                    return self._reserved
                await self._wait_for_slot()
            else:
                self._collect(await self._settle(block=True))

    async def _wait_for_slot(self) -> None:
        """Steps queued for a slot are served before new jobs; a job ending frees a place."""
        slot = asyncio.create_task(self.slots.acquire())
        done, _ = await asyncio.wait({slot, *self._active}, return_when=asyncio.FIRST_COMPLETED)
        if slot in done:
            self._reserved += 1
            return
        slot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slot
        if not slot.cancelled():  # it was granted as it was cancelled
            self._reserved += 1

    def _release_reserved(self) -> None:
        while self._reserved > 0:
            self._reserved -= 1
            self.slots.release()

    async def drain(self) -> list[JobLine]:
        """Wait for every job in flight; returns the lines kept (the last jobs to end), by
        queue task id. `outcomes` counts every job."""
        self._release_reserved()  # a run that stopped taking must not keep its steps waiting
        while self._active:
            self._collect(await self._settle(block=True))
        return sorted(self.lines, key=lambda j: j.queue_task_id)

    async def _settle(self, block: bool) -> set[asyncio.Task[JobLine]]:
        if not self._active:
            return set()
        done, _ = await asyncio.wait(
            self._active, timeout=None if block else 0, return_when=asyncio.FIRST_COMPLETED
        )
        return done

    def _collect(self, done: set[asyncio.Task[JobLine]]) -> None:
        for task in done:
            self._active.discard(task)
            self.record((task.result(),))

    async def _guarded(self, claim: Claim, holds_slot: bool) -> JobLine:
        try:
            if claim.spec.workflow:  # a parent holds no slot: its steps take their own
                if holds_slot:
                    self.slots.release()
                    holds_slot = False
            elif not holds_slot:
                await self.slots.acquire()
                holds_slot = True
            line = await self._run(claim)
        except Exception as exc:  # one job's crash must not sink the run; the sweep rescues it
            log.exception("job %s crashed", claim.spec.queue_task_id)
            line = JobLine(
                queue_task_id=claim.spec.queue_task_id,
                job_id=claim.job_id,
                outcome=NotFinished.CRASHED,
                detail=str(exc),
            )
        finally:
            if holds_slot:
                self.slots.release()
        await self._watcher.job_done(line)
        return line
