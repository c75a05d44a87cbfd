"""Drain a paged queue whose cursors may shift: pass over it until a pass finds nothing new.

The remote-queue contract lets `nextCursor` be an offset into the current list of OPEN tasks,
so a consumer's own takes shift later pages (whole pages get skipped) and tasks added while it
pages may land on pages it already read. One pass is therefore not enough. `Drain` passes
over the queue from the first page again and again, yields every item it has not yet yielded
in this run (its key decides), and stops after a complete pass that yielded nothing new.

A pass that found nothing new proves the queue drained only if no write of ours took a task
off the listing while it read (a take landing between two page reads slides the next unread
task onto a page already read). Given `own_writes` (the queue client's ListingWrites), the
drain waits for those writes to land and passes again when any was under way during the pass.

Yielded means judged: the consumer decides each item once per run (takes it, rejects it,
finds no agent for it, or loses it to another consumer) and the drain never offers it again,
so unservable tasks are not re-planned in a loop and rejected items without an id (keyed by
a hash of their raw text) cannot cause endless passes. Ending needs no timer: every pass but
the last yields at least one item that was never yielded before.

Page size adapts: a page that gives the consumer nothing to do (every item yielded before,
or the consumer calls `quiet()`: e.g. a backlog no agent can serve) doubles the next page's
`limit`, up to `max_page_size`; a page with work brings it back to `page_size`. A waiting
backlog then costs a few large pages per pass instead of many small ones, while pages with
work stay small.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable, Sequence
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """One page as the drain needs it: its items and the cursor of the next page."""

    items: Sequence[T]
    next_cursor: str | None


FetchPage = Callable[[str | None], Awaitable[Listing[T]]]


class OwnWrites(Protocol):
    """The consumer's writes that take items off the listing (clients/listing_writes.py)."""

    started: int  # so far
    in_flight: int  # under way now

    async def settled(self) -> None:
        """Wait until none is under way."""


def compact(key: Hashable) -> bytes:
    """What the drain remembers of a key: a 16-byte digest of its repr (a 49-byte object
    instead of a tuple and its strings, ~140 bytes a task id). Two keys sharing one has odds
    of about n²/2¹²⁹; keys are strings or tuples of them, whose repr says what they are."""
    return hashlib.blake2b(repr(key).encode(), digest_size=16).digest()


class Drain(Generic[T]):
    """Passes over a paged queue; `batches()` yields the items of each page not yet yielded.

    `fetch(cursor)` reads one page (None: the first) of `limit` items. `max_passes` is a
    last-resort bound for a queue that keeps producing new items faster than they are taken
    (None: no bound).
    """

    def __init__(
        self,
        fetch: FetchPage[T],
        key: Callable[[T], Hashable],
        *,
        max_passes: int | None = None,
        page_size: int = 50,
        max_page_size: int | None = None,
        own_writes: OwnWrites | None = None,
    ) -> None:
        self._fetch = fetch
        self._writes = own_writes
        self._key = key
        self._max_passes = max_passes
        self._yielded: set[bytes] = set()  # compact() of every key yielded in this run
        self._page_size = page_size
        self._max_page_size = max(max_page_size or page_size, page_size)
        self._quiet = False
        self.limit = page_size  # how many items the next fetch asks for
        self.passes = 0  # passes started
        self.pages = 0  # pages read

    def quiet(self) -> None:
        """The batch just yielded gave the consumer nothing to do: the next page may be larger."""
        self._quiet = True

    def _resize(self, quiet: bool) -> None:
        self.limit = min(self.limit * 2, self._max_page_size) if quiet else self._page_size

    @property
    def judged(self) -> int:
        """Distinct items yielded so far in this run."""
        return len(self._yielded)

    async def batches(self) -> AsyncGenerator[list[T], None]:
        """Each page's new items (pages with none are skipped), until a pass finds nothing."""
        while self._max_passes is None or self.passes < self._max_passes:
            self.passes += 1
            found_new = False
            before = self._writes_mark()
            # aclosing: a consumer that stops early (--max-jobs) closes the pass it was in.
            async with contextlib.aclosing(self._one_pass()) as pages:
                async for fresh in pages:
                    found_new = True
                    yield fresh
            if not found_new and await self._listing_held_still(before):
                return

    def _writes_mark(self) -> tuple[int, int] | None:
        return None if self._writes is None else (self._writes.started, self._writes.in_flight)

    async def _listing_held_still(self, before: tuple[int, int] | None) -> bool:
        """No write of ours was under way during the pass that began at `before` (waits for
        those under way now to land, so the next pass reads a listing they no longer move)."""
        if self._writes is None or before is None:
            return True
        await self._writes.settled()
        return before == (self._writes.started, 0)

    async def items(self) -> AsyncIterator[T]:
        """The same items one at a time."""
        async for batch in self.batches():
            for item in batch:
                yield item

    async def _one_pass(self) -> AsyncGenerator[list[T], None]:
        cursor: str | None = None
        seen_cursors: set[str] = set()
        while True:
            page = await self._fetch(cursor)
            self.pages += 1
            fresh = []
            for item in page.items:
                key = compact(self._key(item))
                if key not in self._yielded:  # also drops an item repeated on one page
                    self._yielded.add(key)
                    fresh.append(item)
            if fresh:
                self._quiet = False
                yield fresh
            self._resize(quiet=not fresh or self._quiet)
            cursor = page.next_cursor
            # A cursor seen before in this pass would loop forever: end the pass instead.
            if not cursor or cursor in seen_cursors:
                return
            seen_cursors.add(cursor)
