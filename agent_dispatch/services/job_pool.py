"""A small bounded pool of jobs in flight: at most `size` at once, each driven by `run`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from agent_dispatch.services.dispatching import NOT_TAKEN, JobLine, NotFinished
from agent_dispatch.services.intake import Claim

log = logging.getLogger(__name__)


class Watcher(Protocol):
    """Told when jobs start and end (the run's progress)."""

    def add(self, n: int) -> None: ...

    async def job_done(self, line: JobLine) -> None: ...


class JobPool:
    """Jobs run concurrently; the pool says how many more may start (room and budget)."""

    def __init__(
        self, size: int, run: Callable[[Claim], Awaitable[JobLine]], watcher: Watcher
    ) -> None:
        self.size = size
        self._run = run
        self._watcher = watcher
        self._active: set[asyncio.Task[JobLine]] = set()
        self.lines: list[JobLine] = []

    def start(self, claims: Iterable[Claim]) -> None:
        started = [asyncio.create_task(self._guarded(c)) for c in claims]
        self._active.update(started)
        self._watcher.add(len(started))

    @property
    def taken(self) -> int:
        """Jobs this run took or is working on (not those it left on the queue)."""
        return len(self._active) + sum(1 for j in self.lines if j.outcome not in NOT_TAKEN)

    def budget_left(self, max_jobs: int | None) -> int | None:
        return None if max_jobs is None else max(max_jobs - self.taken, 0)

    async def room(self, max_jobs: int | None) -> int:
        """How many jobs may start now: waits for a free slot; 0 once the budget is spent."""
        while True:
            self._collect(await self._settle(block=False))
            left = self.budget_left(max_jobs)
            if left == 0:
                return 0
            free = self.size - len(self._active)
            if free > 0:
                return free if left is None else min(free, left)
            self._collect(await self._settle(block=True))

    async def drain(self) -> list[JobLine]:
        """Wait for every job in flight; returns every line of the run, by queue task id."""
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
            self.lines.append(task.result())

    async def _guarded(self, claim: Claim) -> JobLine:
        try:
            line = await self._run(claim)
        except Exception as exc:  # one job's crash must not sink the run; the sweep rescues it
            log.exception("job %s crashed", claim.spec.queue_task_id)
            line = JobLine(
                queue_task_id=claim.spec.queue_task_id,
                job_id=claim.job_id,
                outcome=NotFinished.CRASHED,
                detail=str(exc),
            )
        await self._watcher.job_done(line)
        return line
