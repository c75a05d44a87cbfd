"""The simulated queue's tasks: storage, cursor paging and the contract's status rules."""

from __future__ import annotations

import base64
import bisect
import copy
import dataclasses
import datetime as dt
import itertools
import threading
import time
from collections import Counter
from typing import Any

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


@dataclasses.dataclass(slots=True)
class _Entry:
    item: dict[str, Any]
    status: str  # kept apart from item["status"], which a raw item may lack or garble
    order: Order


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


def encode_cursor(order: Order) -> str:
    return base64.urlsafe_b64encode(f"{order[0]!r}/{order[1]}".encode()).decode()


def decode_cursor(cursor: str) -> Order:
    """Raise ValueError for a cursor this queue did not hand out."""
    try:
        stamp, seq = base64.urlsafe_b64decode(cursor.encode()).decode().split("/")
        return float(stamp), int(seq)
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

    def add(
        self, item: dict[str, Any], status: str | None = None, *, assign_id: bool = False
    ) -> dict[str, Any]:
        """Store `item` as given; listed under `status`, else its own status, else OPEN."""
        with self._lock:
            self._seq += 1
            if assign_id and "id" not in item:
                item = {"id": self._free_id(), **item}
            if status is None:
                status = item["status"] if isinstance(item.get("status"), str) else "OPEN"
            stamp = _timestamp(item.get("createdAt"))
            entry = _Entry(
                copy.deepcopy(item), status, (time.time() if stamp is None else stamp, self._seq)
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

    def page(
        self, status: str, limit: int, after: Order | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        with self._lock:
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
            cursor = encode_cursor(page[-1].order) if more else None
            return [copy.deepcopy(e.item) for e in page], cursor

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
        entry = self._by_id.get(task_id)
        if entry is None:
            return 404, {"error": f"no task {task_id}"}
        if entry.status != change["expectedStatus"]:
            return 409, {"currentStatus": entry.status}
        target = change["status"]
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
