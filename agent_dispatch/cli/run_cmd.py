"""`agent-dispatch run [--max-jobs N]`: one dispatch flow run."""

from __future__ import annotations

import argparse
import asyncio

from agent_dispatch.cli.base import CLIError, positive_int, runtime
from agent_dispatch.report import print_summary
from db.migrate import upgrade


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="one dispatch run: take OPEN queue tasks and finish them")
    p.add_argument("--max-jobs", type=positive_int, default=None)
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from flows.dispatch import DispatchParams, dispatch_flow

    rt = runtime()
    upgrade(rt.engine)  # a no-op when current; saves a 3 a.m. "no such table"
    summary = asyncio.run(dispatch_flow(DispatchParams(max_jobs=args.max_jobs)))
    if args.json:
        print(summary.model_dump_json(indent=2))
    else:
        print_summary(summary)
    if summary.stopped_reason:
        raise CLIError(summary.stopped_reason)
    return 0
