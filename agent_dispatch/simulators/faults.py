"""Faults programmed at runtime for the next requests to the simulated queue."""

from __future__ import annotations

import dataclasses
import threading
from typing import Literal

FaultKind = Literal["fail", "delay", "malformed"]
MalformedKind = Literal["text", "shape"]


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    method: str | None = None  # None: any method
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    malformed: MalformedKind = "text"

    def matches(self, method: str) -> bool:
        return self.method is None or self.method.upper() == method.upper()


@dataclasses.dataclass(frozen=True, slots=True)
class Faults:
    """What to do to one request; each part is None when no fault of that kind applies."""

    delay: Fault | None = None
    fail: Fault | None = None
    malformed: Fault | None = None


class FaultPlan:
    """Faults queued in order; each one is used up by n matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Fault, list[int]]] = []

    def add(self, fault: Fault, n: int) -> None:
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._pending.append((fault, [n]))

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> int:
        """Requests still to be hit, summed over all faults."""
        with self._lock:
            return sum(left[0] for _, left in self._pending)

    def take(self, method: str) -> Faults:
        """Use up the first matching fault of each kind for one request."""
        chosen: dict[FaultKind, Fault] = {}
        with self._lock:
            for fault, left in self._pending:
                if fault.kind not in chosen and fault.matches(method):
                    chosen[fault.kind] = fault
                    left[0] -= 1
            self._pending = [(f, left) for f, left in self._pending if left[0] > 0]
        return Faults(chosen.get("delay"), chosen.get("fail"), chosen.get("malformed"))
