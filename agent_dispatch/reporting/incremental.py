"""Which buckets an analytics run recomputes: an explicit period, or what is new since last.

An incremental run (the hourly schedule) reads the watermark of each period kind and
recomputes the buckets from the one holding `watermark - settle` up to now: the buckets that
rows finished since the previous run can have touched. The settle margin re-reads the last
minutes before the watermark, for rows whose transaction committed after the previous run
read (finished_at is set just before commit) or that come from a worker whose clock is a
little behind. Without a watermark (the first run) it recomputes the default lookback.

Each bucket is always recomputed whole from the execution rows, so its numbers, percentiles
included, are exactly what a full recompute gives. The cost of a run is the rows of the
buckets it touches: the new hour(s) and the current UTC day, not the history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from agent_dispatch.domain.periods import KINDS, PeriodKind, Window, aligned

SETTLE = dt.timedelta(minutes=5)
DEFAULT_LOOKBACK = dt.timedelta(hours=48)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The whole buckets to replace per kind, and whether the run moves the watermarks."""

    windows: dict[PeriodKind, Window]
    incremental: bool
    previous: dict[PeriodKind, dt.datetime | None]  # watermarks before this run

    def describe(self) -> str:
        how = "incremental" if self.incremental else "explicit period"
        return f"{how}: " + "; ".join(f"{k} {w.label()}" for k, w in self.windows.items())


def explicit(window: Window) -> Plan:
    """Replace the whole buckets overlapping `window`; the watermarks stay where they are."""
    return Plan({k: aligned(window, k) for k in KINDS}, False, {})


def incremental(
    marks: Mapping[PeriodKind, Mapping[str, Any]],
    now: dt.datetime,
    *,
    settle: dt.timedelta = SETTLE,
    first_lookback: dt.timedelta = DEFAULT_LOOKBACK,
) -> Plan:
    """The buckets touched since each kind's watermark (or the default lookback at first).

    `marks`: the watermark rows by kind (db.reporting_store.read_watermarks).
    """
    windows: dict[PeriodKind, Window] = {}
    previous: dict[PeriodKind, dt.datetime | None] = {}
    for kind in KINDS:
        mark = marks.get(kind)
        last: dt.datetime | None = mark["watermark"] if mark else None
        previous[kind] = last
        start = now - first_lookback if last is None else min(last, now) - settle
        windows[kind] = aligned(Window(start, now), kind)
    return Plan(windows, True, previous)
