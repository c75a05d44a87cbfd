"""`stats`/`analytics` argument parsing: durations, ISO times, one-line usage errors."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from agent_dispatch.cli.analytics_cmd import moment
from agent_dispatch.cli.main import build_parser


def near(value: dt.datetime, expected: dt.datetime) -> bool:
    return abs((value - expected).total_seconds()) < 5


@pytest.mark.parametrize(
    ("text", "back"),
    [("24h", dt.timedelta(hours=24)), ("7d", dt.timedelta(days=7)),
     ("30m", dt.timedelta(minutes=30)), ("2w", dt.timedelta(weeks=2)),
     (" 1.5H ", dt.timedelta(hours=1.5))],
)  # fmt: skip
def test_durations_count_back_from_now(text: str, back: dt.timedelta) -> None:
    assert near(moment(text), dt.datetime.now(dt.UTC) - back)


def test_iso_times_naive_means_utc() -> None:
    assert moment("2026-03-01T08:00") == dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
    assert moment("2026-03-01T08:00+02:00") == dt.datetime(2026, 3, 1, 6, tzinfo=dt.UTC)
    assert moment("2026-03-01") == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [("nonsense", "neither an ISO date-time"), ("0h", "must be positive"),
     ("2999-01-01", "in the future"), ("12x", "neither an ISO")],
)  # fmt: skip
def test_bad_values(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        moment(text)


@pytest.mark.parametrize(
    "argv",
    [["stats", "--since", "nonsense"], ["analytics", "--since", "24h", "--hours", "3"],
     ["analytics", "--hours", "-1"], ["analytics", "--half-life-days", "0"]],
)  # fmt: skip
def test_usage_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_parsed_arguments() -> None:
    args = build_parser().parse_args(["analytics", "--out", "rep", "--hours", "6", "--json"])
    assert (str(args.out), args.hours, args.since, args.json) == ("rep", 6.0, None, True)
    args = build_parser().parse_args(["stats"])
    assert args.since is None and args.json is False
