"""agent-dispatch: take jobs from a remote queue and get them done by AI agents."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from sqlalchemy.exc import ArgumentError, OperationalError

from agent_dispatch import __version__
from agent_dispatch.cli import (
    agents_cmd,
    analytics_cmd,
    db_cmd,
    demo_cmd,
    jobs_cmd,
    ops_cmd,
    run_cmd,
    serve_cmd,
    workflows_cmd,
)
from agent_dispatch.cli.base import CLIError, Parser
from agent_dispatch.services.errors import Refused

COMMANDS = [
    db_cmd,
    agents_cmd,
    run_cmd,
    serve_cmd,
    jobs_cmd,
    workflows_cmd,
    ops_cmd,
    analytics_cmd,
    demo_cmd,
]


def build_parser() -> Parser:
    parser = Parser(prog="agent-dispatch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"agent-dispatch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for module in COMMANDS:
        module.register(sub)
    return parser


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (CLIError, Refused) as exc:
        print(f"agent-dispatch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("agent-dispatch: interrupted", file=sys.stderr)
        return 130
    except (OperationalError, ArgumentError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"agent-dispatch: database problem: {_first_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # 3 a.m. rule: one line by default, the traceback on request
        if args.debug:
            traceback.print_exc()
        name = type(exc).__name__
        hint = "(--debug shows the traceback)"
        print(f"agent-dispatch: {name}: {_first_line(exc)} {hint}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
