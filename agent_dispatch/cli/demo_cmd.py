"""`agent-dispatch demo`."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent_dispatch.settings import DEFAULT_SQLITE_PATH


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the real pipeline against simulated agents and queue")
    p.add_argument(
        "--db",
        type=Path,
        default=DEFAULT_SQLITE_PATH.with_name("demo.db"),
        help="SQLite file for the demo (recreated)",
    )
    p.add_argument("--verbose", action="store_true", help="show Prefect's run log on the console")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from agent_dispatch.demo import run_demo

    return run_demo(args.db, verbose=args.verbose)
