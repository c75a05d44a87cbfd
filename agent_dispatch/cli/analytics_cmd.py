"""`agent-dispatch analytics [--out DIR]` (one analytics flow run) and `agent-dispatch stats`."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from agent_dispatch.cli.base import CLIError, emit_json, runtime
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.types import utcnow

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(text: str) -> dt.datetime:
    """`--since`: an ISO date-time (naive = UTC) or a duration back from now: 30m, 24h, 7d, 2w."""
    match = _DURATION.match(text)
    if match:
        amount, unit = float(match.group(1)), _UNITS[match.group(2).lower()]
        if amount <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: the duration must be positive")
        return utcnow() - dt.timedelta(**{unit: amount})
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO date-time (2026-03-01T08:00) nor a duration like 24h or 7d"
        ) from None
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if value >= utcnow():
        raise argparse.ArgumentTypeError(f"{text!r} is in the future")
    return value


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "analytics", help="aggregate execution history, refresh ranking, write the dashboard"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder for index.html (default ~/.agent-dispatch/report)",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--since", type=moment, default=None, metavar="ISO|24h|7d")
    when.add_argument(
        "--hours",
        type=positive_number,
        default=None,
        metavar="N",
        help="recompute the last N hours (default: only what is new since the last run)",
    )
    p.add_argument(
        "--half-life-days",
        type=positive_number,
        default=7.0,
        metavar="D",
        help="how fast old results stop counting for ranking (default 7)",
    )
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(handler=cmd_analytics)

    s = sub.add_parser(
        "stats", help="success rate, per-agent performance, execution time and error rate"
    )
    s.add_argument(
        "--since",
        type=moment,
        default=None,
        metavar="ISO|24h|7d",
        help="only what ended since then (default: all time)",
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_stats)


def cmd_analytics(args: argparse.Namespace) -> int:
    from agent_dispatch.flows.analytics import AnalyticsParams, analytics_flow
    from agent_dispatch.reporting.stats import render_text

    rt = runtime()
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise CLIError(f"--out {args.out} exists and is not a folder")
    upgrade(rt.engine)  # the reporting tables come with a migration
    params = AnalyticsParams(
        since=args.since,
        lookback_hours=args.hours,  # neither --since nor --hours: incremental
        out_dir=str(args.out.resolve()) if args.out is not None else None,
        half_life_days=args.half_life_days,
    )
    try:
        summary = analytics_flow(params)
    except OSError as exc:
        raise CLIError(f"cannot write the dashboard: {exc}") from None
    if args.json:
        print(summary.model_dump_json(indent=2))
        return 0
    print(render_text(summary.stats))
    rows = ", ".join(f"{k} {v}" for k, v in summary.rows_written.items())
    print(f"\nreporting rows replaced: {rows}")
    print(f"reputation refreshed for {summary.agents_refreshed} agents")
    print(f"dashboard: {summary.dashboard}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from agent_dispatch.reporting.stats import render_text
    from agent_dispatch.services.stats import stats_document

    try:
        doc = stats_document(runtime(), args.since, utcnow())
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise CLIError(
            f"cannot read statistics ({first}); try: agent-dispatch db upgrade"
        ) from None
    if args.json:
        emit_json(doc)
    else:
        print(render_text(doc))
    return 0
