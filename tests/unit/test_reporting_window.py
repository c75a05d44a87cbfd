"""Period buckets: hour and UTC-day boundaries, aligned rewrite windows."""

from __future__ import annotations

import datetime as dt

import pytest

from agent_dispatch.domain.periods import Window, aligned, buckets, ceil, floor

UTC = dt.UTC


def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_floor_and_ceil() -> None:
    assert floor(t(10, 13, 45), "hour") == t(10, 13)
    assert floor(t(10, 13, 45), "day") == t(10, 0)
    assert ceil(t(10, 13, 45), "hour") == t(10, 14)
    assert ceil(t(10, 13), "hour") == t(10, 13)
    assert ceil(t(10, 13, 45), "day") == t(11, 0)


def test_non_utc_input_is_bucketed_in_utc() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    local = dt.datetime(2026, 3, 10, 1, 30, tzinfo=plus2)  # 23:30 UTC the day before
    assert floor(local, "day") == t(9, 0)
    assert floor(local, "hour") == t(9, 23)


def test_aligned_covers_whole_buckets() -> None:
    w = Window(t(10, 13, 45), t(10, 15, 5))
    assert aligned(w, "hour") == Window(t(10, 13), t(10, 16))
    assert aligned(w, "day") == Window(t(10, 0), t(11, 0))
    assert buckets(w, "hour") == [t(10, 13), t(10, 14), t(10, 15)]
    assert buckets(w, "day") == [t(10, 0)]


def test_window_must_be_aware_and_non_empty() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(dt.datetime(2026, 3, 10), t(10, 1))
    with pytest.raises(ValueError, match="empty window"):
        Window(t(10, 1), t(10, 1))
    assert Window(t(10, 1), t(10, 4)).hours == 3.0
