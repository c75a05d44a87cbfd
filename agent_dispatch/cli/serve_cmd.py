"""`agent-dispatch serve`: the API and live panel, and the flows on their schedules, in one
process (a single-host install needs no work pool). Ctrl-C stops it cleanly."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import sys
from collections.abc import Iterator
from typing import Any

from agent_dispatch.cli.base import CLIError, runtime
from agent_dispatch.db.migrate import upgrade

# The schedules of deployments/prefect.yaml, so a served install behaves like a deployed one.
EVERY_MINUTE, EVERY_FIVE_MINUTES, HOURLY_AT_7 = 60, 300, "7 * * * *"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve", help="serve the HTTP API and live panel, and the flows on their schedules"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=_port, default=8080)
    p.add_argument(
        "--no-flows", action="store_true", help="only the API and panel; flows run elsewhere"
    )
    p.set_defaults(handler=cmd_serve)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def cmd_serve(args: argparse.Namespace) -> int:
    # Imported here, as every command's heavy parts: `agent-dispatch` with a bad argument
    # answers at once instead of after seconds of loading web and Prefect modules.
    import uvicorn

    from agent_dispatch.api import create_app
    from agent_dispatch.flows.analytics import DEFAULT_REPORT_DIR

    rt = runtime()
    if not rt.settings.api_token.get_secret_value() and not is_loopback(args.host):
        raise CLIError(
            f"refusing to listen on {args.host} without API_TOKEN: anyone who can reach it "
            "could register agents and cancel jobs (set API_TOKEN, or use --host 127.0.0.1)"
        )
    upgrade(rt.engine)  # the change log comes with a migration
    if not args.no_flows and not _prefect_server():
        print(
            "agent-dispatch: no PREFECT_API_URL: runs started over the API are served, but "
            "Prefect's temporary server has no scheduler and no UI; for the schedules, run "
            "`prefect server start` and set PREFECT_API_URL",
            file=sys.stderr,
        )
    app = create_app(lambda: rt, report_dir=DEFAULT_REPORT_DIR)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_graceful_shutdown=5,
        # Compressing each small change costs more CPU than it saves on a LAN; fan-out to many
        # clients is CPU-bound (benchmarks/ws_fanout.py).
        ws_per_message_deflate=False,
    )
    asyncio.run(_serve(_quiet_ctrl_c(uvicorn.Server)(config), with_flows=not args.no_flows))
    print("agent-dispatch: stopped", file=sys.stderr)
    return 0


def _prefect_server() -> bool:
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def _quiet_ctrl_c(server: type[Any]) -> type[Any]:
    """uvicorn's Server, minus re-raising the caught Ctrl-C after a graceful shutdown (it
    would end the process before the served flows are stopped)."""

    class Server(server):  # type: ignore[misc, valid-type]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            signals = (signal.SIGINT, signal.SIGTERM)
            before = {s: signal.signal(s, self.handle_exit) for s in signals}
            try:
                yield
            finally:
                for s, handler in before.items():
                    signal.signal(s, handler)

    return Server


async def _runner() -> Any:
    from prefect.runner import Runner
    from prefect.types.entrypoint import EntrypointType

    from agent_dispatch.flows.analytics import analytics_flow
    from agent_dispatch.flows.dispatch import dispatch_flow
    from agent_dispatch.flows.health import health_flow
    from agent_dispatch.flows.sweep import sweep_flow

    runner = Runner(name="agent-dispatch-serve")
    module = EntrypointType.MODULE_PATH  # runs load the installed package, not a file path
    # Names match prefect.yaml, so POST /api/runs finds "dispatch/dispatch" either way.
    await runner.aadd_flow(
        dispatch_flow,
        name="dispatch",
        interval=EVERY_MINUTE,
        parameters={"params": {"max_jobs": 100}},
        entrypoint_type=module,
    )
    await runner.aadd_flow(
        sweep_flow, name="sweep", interval=EVERY_MINUTE, concurrency_limit=1, entrypoint_type=module
    )
    await runner.aadd_flow(
        health_flow,
        name="health-check",
        interval=EVERY_FIVE_MINUTES,
        concurrency_limit=1,
        entrypoint_type=module,
    )
    await runner.aadd_flow(
        analytics_flow,
        name="analytics",
        cron=HOURLY_AT_7,
        concurrency_limit=1,
        entrypoint_type=module,
    )
    return runner


async def _serve(server: Any, with_flows: bool) -> None:
    runner = await _runner() if with_flows else None
    flows = asyncio.create_task(runner.start()) if runner is not None else None
    await asyncio.sleep(0)  # the runner installs its SIGTERM handler first; uvicorn's wins
    try:
        await server.serve()  # returns after Ctrl-C or SIGTERM, connections closed
    finally:
        if runner is not None and flows is not None:
            if not flows.done():
                with contextlib.suppress(Exception):
                    await runner.astop()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(flows, 30)
