"""Time windows and period buckets (hour, UTC day) the reports are cut into."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

PeriodKind = Literal["hour", "day"]
KINDS: tuple[PeriodKind, ...] = ("hour", "day")
STEP: dict[PeriodKind, dt.timedelta] = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """A half-open UTC time range [start, end)."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start.isoformat()} .. {self.end.isoformat()}")

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"


def floor(moment: dt.datetime, kind: PeriodKind) -> dt.datetime:
    """Start of the bucket holding `moment` (UTC)."""
    m = moment.astimezone(dt.UTC)
    m = m.replace(minute=0, second=0, microsecond=0)
    return m.replace(hour=0) if kind == "day" else m


def ceil(moment: dt.datetime, kind: PeriodKind) -> dt.datetime:
    """End of the bucket holding `moment`, or `moment` itself when it is a bucket start."""
    start = floor(moment, kind)
    return start if start == moment else start + STEP[kind]


def aligned(window: Window, kind: PeriodKind) -> Window:
    """The smallest run of whole buckets covering `window`: what a period rewrite replaces."""
    return Window(floor(window.start, kind), ceil(window.end, kind))


def buckets(window: Window, kind: PeriodKind) -> list[dt.datetime]:
    """Every bucket start in the aligned window (for charts that must show empty buckets)."""
    w = aligned(window, kind)
    out, t = [], w.start
    while t < w.end:
        out.append(t)
        t += STEP[kind]
    return out


def lookback(now: dt.datetime, hours: float) -> Window:
    return Window(now - dt.timedelta(hours=hours), now)
