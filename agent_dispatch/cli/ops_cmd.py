"""`agent-dispatch sweep` and `agent-dispatch health`: reliability chores, once or on a timer."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from agent_dispatch.cli.base import CLIError, runtime
from agent_dispatch.db.migrate import upgrade

if TYPE_CHECKING:  # Prefect loads only for the commands that run flows
    from prefect.client.schemas.objects import State

S = TypeVar("S", bound=BaseModel)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sw = sub.add_parser(
        "sweep",
        help="rescue jobs whose worker was lost and resend reports the queue has not accepted",
    )
    sw.add_argument(
        "--settle-seconds",
        type=float,
        default=10.0,
        help="leave endings younger than this to the worker reporting them",
    )
    sw.add_argument(
        "--every",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="keep sweeping on this interval (a scheduled flow run each time)",
    )
    sw.add_argument("--json", action="store_true")
    sw.set_defaults(handler=cmd_sweep)
    hp = sub.add_parser("health", help="probe every agent's /health and record the result")
    hp.add_argument(
        "--every",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="keep probing on this interval",
    )
    hp.add_argument("--json", action="store_true")
    hp.set_defaults(handler=cmd_health)


def _repeat(run_once: Callable[[], int], every: float | None) -> int:
    """Run once, or on an interval until interrupted; each round is its own flow run."""
    while True:
        started = time.monotonic()
        code = run_once()
        if every is None:
            return code
        time.sleep(max(0.0, every - (time.monotonic() - started)))


def _show(summary: BaseModel, headline: str, lines: list[str], as_json: bool) -> None:
    if as_json:
        print(summary.model_dump_json(indent=2))
        return
    print(headline)
    for line in lines:
        print("  " + line)


def _summary(run: Awaitable[State[Any]], kind: type[S]) -> tuple[S, str | None]:
    """The run's summary, even when it ended Failed, and the one line it failed with."""

    async def wait() -> State[Any]:
        return await run

    state = asyncio.run(wait())
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, Exception):
        raise summary
    assert isinstance(summary, kind)
    return summary, (state.message if state.is_failed() else None)


def cmd_sweep(args: argparse.Namespace) -> int:
    from agent_dispatch.flows.sweep import SweepParams, SweepSummary, sweep_flow

    upgrade(runtime().engine)

    def once() -> int:
        params = SweepParams(settle_seconds=args.settle_seconds)
        summary, failed = _summary(sweep_flow(params, return_state=True), SweepSummary)
        lines = [f"{x['queueTaskId']:<24} {x['action']:<10} {x['detail']}" for x in summary.lines]
        _show(summary, summary.headline(), lines, args.json)
        if failed:
            raise CLIError(f"sweep stopped: {failed}")
        return 0

    return _repeat(once, args.every)


def cmd_health(args: argparse.Namespace) -> int:
    from agent_dispatch.flows.health import HealthSummary, health_flow

    upgrade(runtime().engine)

    def once() -> int:
        summary, failed = _summary(health_flow(return_state=True), HealthSummary)
        lines = [
            f"{a['name']!s:<20} {'ok' if a['healthy'] else 'DOWN':<5} {a['detail']}"
            for a in summary.agents
        ]
        _show(summary, summary.headline(), lines, args.json)
        if failed:
            raise CLIError(f"health check stopped: {failed}")
        return 0

    return _repeat(once, args.every)
