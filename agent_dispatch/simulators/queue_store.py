"""The simulated queue's tasks: storage, cursor paging and the contract's status rules."""

from __future__ import annotations

import base64
import bisect
import copy
import dataclasses
import datetime as dt
import itertools
import json
import threading
import time
from collections import Counter
from typing import Any, Literal

STATUSES = ("OPEN", "DISTRIBUTED", "IN_PROGRESS", "COMPLETED", "CANCELLED", "EXPIRED", "FAILED")
TERMINAL = frozenset({"COMPLETED", "CANCELLED", "EXPIRED", "FAILED"})
# The queue's own rules, looser than domain.statuses: the queue must accept OPEN -> FAILED
# (bad items are reported that way) and DISTRIBUTED -> COMPLETED from any consumer.
TRANSITIONS: dict[str, frozenset[str]] = {
    "OPEN": frozenset({"DISTRIBUTED", "CANCELLED", "EXPIRED", "FAILED"}),
    "DISTRIBUTED": frozenset({"IN_PROGRESS"} | TERMINAL),
    "IN_PROGRESS": TERMINAL,
}

Order = tuple[float, int]  # (createdAt as a timestamp, insertion number)
# What a page's nextCursor means. "stable": the position of the last task listed, so later
# pages are unaffected by status changes. "offset": an index into the current list of tasks
# in that status, as some real queues do: a consumer's own takes shift later pages.
CursorMode = Literal["stable", "offset"]
CURSOR_MODES: tuple[CursorMode, ...] = ("stable", "offset")


@dataclasses.dataclass(slots=True)
class _Entry:
    item: dict[str, Any]
    status: str  # kept apart from item["status"], which a raw item may lack or garble
    order: Order
    raw: str | None = None  # JSON text served in pages instead of `item` (hostile items)

    def listed(self) -> str:
        if self.raw is not None:
            return self.raw
        # ASCII escapes and NaN allowed: serve what was seeded, however odd, without failing.
        return json.dumps(self.item, separators=(",", ":"))


def utc_iso(moment: dt.datetime | None = None) -> str:
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _encode_cursor(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def _decode_cursor(cursor: str, mode: CursorMode) -> Order | int:
    """Raise ValueError for a cursor this queue (in its current mode) did not hand out."""
    try:
        kind, value = base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)
        if kind == "s" and mode == "stable":
            stamp, seq = value.split("/")
            return float(stamp), int(seq)
        if kind == "o" and mode == "offset":
            return int(value)
        raise ValueError(kind)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"bad cursor {cursor!r}") from exc


class TaskStore:
    """Thread-safe task storage; every read hands out copies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sorted: list[_Entry] = []  # by order: oldest first, then insertion order
        self._by_id: dict[str, _Entry] = {}
        self._seq = 0  # insertion number, the tie-breaker of equal createdAt
        self._ids = 0  # last number used for a generated id
        self._finished: Counter[str] = Counter()
        # Every PATCH that reached the queue's rules, accepted or not: proves "exactly once".
        self._finish_attempts: Counter[str] = Counter()
        self._take_attempts: Counter[str] = Counter()
        self.cursor_mode: CursorMode = "stable"

    def add(
        self,
        item: dict[str, Any],
        status: str | None = None,
        *,
        assign_id: bool = False,
        raw: str | None = None,
        first: bool = False,
    ) -> dict[str, Any]:
        """Store `item` as given; listed under `status`, else its own status, else OPEN.

        `raw`: JSON text to list instead of `item` (which then only addresses the task).
        `first`: list it ahead of every task, with a createdAt older than theirs.
        """
        with self._lock:
            self._seq += 1
            if assign_id and "id" not in item:
                item = {"id": self._free_id(), **item}
            if status is None:
                status = item["status"] if isinstance(item.get("status"), str) else "OPEN"
            stamp = _timestamp(item.get("createdAt"))
            if first:
                stamp = (self._sorted[0].order[0] if self._sorted else time.time()) - 1.0
                item = {**item, "createdAt": utc_iso(dt.datetime.fromtimestamp(stamp, dt.UTC))}
            entry = _Entry(
                copy.deepcopy(item),
                status,
                (time.time() if stamp is None else stamp, self._seq),
                raw,
            )
            bisect.insort(self._sorted, entry, key=lambda e: e.order)
            if isinstance(item.get("id"), str):
                self._by_id[item["id"]] = entry
            return copy.deepcopy(entry.item)

    def _free_id(self) -> str:
        self._ids += 1
        while f"task-{self._ids:04d}" in self._by_id:
            self._ids += 1
        return f"task-{self._ids:04d}"

    def page(self, status: str, limit: int, cursor: str | None) -> tuple[list[str], str | None]:
        """The JSON text of each task on the page, and the next cursor (None: the last page).

        Raises ValueError for a cursor this store did not hand out in its current mode.
        """
        with self._lock:
            after = None if cursor is None else _decode_cursor(cursor, self.cursor_mode)
            if self.cursor_mode == "offset":  # an index into the current filtered list
                offset = after if isinstance(after, int) else 0
                listed = [e for e in self._sorted if e.status == status]
                page = listed[offset : offset + limit]
                more = offset + limit < len(listed)
                next_cursor = _encode_cursor("o", str(offset + limit)) if more else None
                return [e.listed() for e in page], next_cursor
            assert not isinstance(after, int)
            start = (
                0
                if after is None
                else bisect.bisect_right(self._sorted, after, key=lambda e: e.order)
            )
            found: list[_Entry] = []
            for entry in itertools.islice(self._sorted, start, None):
                if entry.status == status:
                    found.append(entry)
                    if len(found) > limit:
                        break
            more = len(found) > limit
            page = found[:limit]
            last = page[-1].order if more else None
            next_cursor = None if last is None else _encode_cursor("s", f"{last[0]!r}/{last[1]}")
            return [e.listed() for e in page], next_cursor

    def get(self, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._by_id.get(task_id)
            return None if entry is None else copy.deepcopy(entry.item)

    def set_status(self, task_id: str, status: str) -> None:
        """Change a status with no rules, as the queue's owner might (e.g. cancel a task)."""
        with self._lock:
            entry = self._by_id[task_id]
            entry.status = entry.item["status"] = status

    def patch(self, task_id: str, change: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Apply a validated StatusChange; return the HTTP status and body."""
        with self._lock:
            return self._apply(task_id, change)

    def _apply(self, task_id: str, change: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        target = change["status"]
        if target in TERMINAL:
            self._finish_attempts[task_id] += 1
        elif target == "DISTRIBUTED":
            self._take_attempts[task_id] += 1
        entry = self._by_id.get(task_id)
        if entry is None:
            return 404, {"error": f"no task {task_id}"}
        if entry.status != change["expectedStatus"]:
            return 409, {"currentStatus": entry.status}
        if target not in TRANSITIONS.get(entry.status, frozenset()):
            return 422, {"error": f"illegal transition {entry.status} -> {target}"}
        entry.status = entry.item["status"] = target
        entry.item["updatedAt"] = utc_iso()  # an extra field: clients must ignore unknown fields
        if target in TERMINAL:
            self._finished[task_id] += 1
            for key in ("result", "error", "agentId"):
                if key in change:
                    entry.item[key] = copy.deepcopy(change[key])
        return 200, copy.deepcopy(entry.item)

    def finished_count(self, task_id: str) -> int:
        with self._lock:
            return self._finished[task_id]

    def attempts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Terminal PATCHes and takes (to DISTRIBUTED) per task, accepted or refused."""
        with self._lock:
            return dict(self._finish_attempts), dict(self._take_attempts)

    def tasks_in(self, status: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(e.item) for e in self._sorted if e.status == status]

    def counts(self) -> dict[str, int]:
        """Tasks per status; every contract status is present, unknown ones are added."""
        with self._lock:
            return {s: 0 for s in STATUSES} | Counter(e.status for e in self._sorted)

    def finished(self) -> dict[str, int]:
        """Successful terminal PATCHes per task."""
        with self._lock:
            return dict(self._finished)
