"""Our own writes that take tasks off the queue's OPEN listing, counted for the drain.

The contract lets `nextCursor` be an offset into the current OPEN list, so every task that
leaves it (our take, a rejection, an unstarted job ended) shifts later pages left while we
read them. services/drain.py ends a run after a pass that found nothing new, which proves
nothing if one of our writes landed during that pass: the shift may have slid a task we
never saw onto a page already read. With this record it can tell, and pass once more.

One instance per runtime, shared by its queue clients on every event loop: plain counters
(each change is made on one loop's thread, between awaits) and a polling wait, no loop-bound
primitive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class ListingWrites:
    """Counts writes that move a task out of OPEN: started so far and under way now."""

    POLL_S = 0.005  # how often `settled` looks; a PATCH on loopback takes milliseconds

    def __init__(self) -> None:
        self.started = 0
        self.in_flight = 0

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around one write: from before it is sent until its answer (or failure) is in."""
        self.started += 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def settled(self) -> None:
        """Wait until no such write is under way (each has reached the queue or failed)."""
        # Polled: one instance serves clients on several loops, and an Event binds to one.
        while self.in_flight:  # noqa: ASYNC110
            await asyncio.sleep(self.POLL_S)
