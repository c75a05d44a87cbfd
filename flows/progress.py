"""Run progress: a Prefect progress artifact on the flow run page, and in-process watchers
(the terminal progress bar of `agent-dispatch run`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from agent_dispatch.services.dispatching import JobLine

PROGRESS_KEY = "dispatch-progress"
# The artifact is read by a person: an update a second is enough. Each update is an API call
# and an event the Prefect server stores, which at one per job ended cost a busy run's
# server more than some of the job's own events.
UPDATE_EVERY_S = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """How far a run is: jobs taken so far, jobs driven to an end, by outcome."""

    total: int
    done: int
    by_outcome: dict[str, int]
    final: bool = False

    @property
    def percent(self) -> float:
        if self.final:
            return 100.0
        return 100.0 * self.done / self.total if self.total else 0.0

    def describe(self) -> str:
        parts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(self.by_outcome.items()))
        return f"{self.done}/{self.total} jobs done" + (f" ({parts})" if parts else "")


Watcher = Callable[[Snapshot], None]
_watchers: list[Watcher] = []


@contextlib.contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Call `watcher` with a Snapshot on every change of any run in this process."""
    _watchers.append(watcher)
    try:
        yield
    finally:
        _watchers.remove(watcher)


class Progress:
    """Counts jobs started and finished in a run and publishes the percentage."""

    def __init__(self, artifact_id: uuid.UUID | None) -> None:
        self.artifact_id = artifact_id
        self.total = 0
        self.done = 0
        self.by_outcome: dict[str, int] = {}
        self._sending: asyncio.Task[None] | None = None
        self._dirty = False
        self._sent_at = -UPDATE_EVERY_S  # monotonic time of the last update sent

    @classmethod
    async def start(cls) -> Progress:
        artifact_id = None
        with contextlib.suppress(Exception):  # progress is informative; never fail a run for it
            artifact_id = await create_progress_artifact(  # type: ignore[misc]
                0.0, key=PROGRESS_KEY, description="Jobs of this run driven to an end"
            )
        return cls(artifact_id)

    def snapshot(self, final: bool = False) -> Snapshot:
        return Snapshot(self.total, self.done, dict(self.by_outcome), final)

    def add(self, n: int) -> None:
        self.total += n
        self._tell(self.snapshot())

    def describe(self) -> str:
        return self.snapshot().describe()

    async def job_done(self, line: JobLine) -> None:
        self.done += 1
        self.by_outcome[line.outcome] = self.by_outcome.get(line.outcome, 0) + 1
        self._tell(self.snapshot())
        self._send_soon()

    async def finish(self) -> None:
        if self._sending is not None:
            self._sending.cancel()  # it may be waiting out the interval: the final update follows
            await asyncio.gather(self._sending, return_exceptions=True)
        await self._publish(final=True)

    def _send_soon(self) -> None:
        """One artifact update in flight at a time and at most one per UPDATE_EVERY_S, the
        latest counts sent: a job's end never waits on the Prefect API, and the ends of a
        busy second are one update."""
        if self.artifact_id is None:
            return
        if self._sending is not None and not self._sending.done():
            self._dirty = True
            return
        self._sending = asyncio.create_task(self._send_latest())

    async def _send_latest(self) -> None:
        assert self.artifact_id is not None  # _send_soon starts none without one
        while True:
            await asyncio.sleep(max(0.0, self._sent_at + UPDATE_EVERY_S - time.monotonic()))
            self._dirty = False
            snap = self.snapshot()
            self._sent_at = time.monotonic()
            with contextlib.suppress(Exception):
                await update_progress_artifact(  # type: ignore[misc]
                    self.artifact_id, snap.percent, description=snap.describe()
                )
            if not self._dirty:
                return

    def _tell(self, snap: Snapshot) -> None:
        for watcher in list(_watchers):
            with contextlib.suppress(Exception):
                watcher(snap)

    async def _publish(self, final: bool = False) -> None:
        snap = self.snapshot(final)
        self._tell(snap)
        if self.artifact_id is None:
            return
        with contextlib.suppress(Exception):
            await update_progress_artifact(  # type: ignore[misc]
                self.artifact_id, snap.percent, description=snap.describe()
            )
