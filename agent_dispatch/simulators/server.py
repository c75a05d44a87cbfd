"""Run an ASGI app on loopback in a background thread, for tests, the demo and chaos runs."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

_START_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class RunningServer:
    url: str
    port: int


@contextlib.contextmanager
def serve_in_thread(
    app: ASGIApp,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    on_stop: Callable[[], None] | None = None,
) -> Iterator[RunningServer]:
    """Serve `app` until the block exits; port 0 lets the OS pick a free port.

    `on_stop` runs before shutdown so handlers that never answer on their own
    (hanging agents, endless streams) can end and not hold the graceful shutdown.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
        loop="asyncio",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"sim-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        # A bind failure makes uvicorn exit the thread without ever starting.
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"simulator server did not start on {host}:{port}")
        time.sleep(0.005)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(url=f"http://{host}:{bound}", port=bound)
    finally:
        if on_stop is not None:
            on_stop()
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        if thread.is_alive():
            # Last resort: stop waiting for open connections; the loop cancels what is left.
            server.force_exit = True
            thread.join(_STOP_TIMEOUT_S)
