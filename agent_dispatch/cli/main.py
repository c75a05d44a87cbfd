"""Entry point: `agent-dispatch COMMAND ...`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from agent_dispatch import __version__
from agent_dispatch.cli import agents_cmd, db_cmd, jobs_cmd, ops_cmd, run_cmd
from agent_dispatch.cli.base import CLIError, Parser
from agent_dispatch.operations import OperationError

COMMANDS = [db_cmd, agents_cmd, run_cmd, jobs_cmd, ops_cmd]


def build_parser() -> Parser:
    parser = Parser(prog="agent-dispatch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"agent-dispatch {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for module in COMMANDS:
        module.register(sub)
    for optional in ("demo_cmd", "analytics_cmd"):
        try:
            module = __import__(f"agent_dispatch.cli.{optional}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"agent_dispatch.cli.{optional}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (CLIError, OperationError) as exc:
        print(f"agent-dispatch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("agent-dispatch: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
