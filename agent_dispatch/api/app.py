"""The app factory: the REST API under /api, the live WebSocket, and the panel at /."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from agent_dispatch import __version__
from agent_dispatch.api import agents, errors, jobs, runs, ws
from agent_dispatch.api.auth import redact_server_logs, require_access
from agent_dispatch.api.live import Hub
from agent_dispatch.bootstrap import Runtime

STATIC = Path(__file__).parent / "static"


def create_app(deps_factory: Callable[[], Runtime], report_dir: Path | None = None) -> FastAPI:
    """`deps_factory` gives the runtime (the real Deps) when the app starts, not at import:
    `uvicorn agent_dispatch.api.asgi:app` reads its settings from the environment then."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact_server_logs()
        app.state.rt = deps_factory()
        app.state.hub = Hub(app.state.rt)
        await app.state.hub.start()
        try:
            yield
        finally:
            await app.state.hub.stop()

    app = FastAPI(
        title="agent-dispatch",
        version=__version__,
        description="Jobs, agents, runs and live status of agent-dispatch.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    errors.install(app)
    api = APIRouter(prefix="/api", dependencies=[Depends(require_access)])
    for module in (jobs, agents, runs):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(ws.router, prefix="/api")  # checks its token itself (query or header)
    app.state.report_dir = report_dir
    if report_dir is not None:
        report = _guarded_static(report_dir)
        report.state = app.state  # the same runtime and settings for its access check
        app.mount("/report", report, name="report")
    # The panel is static code with no data in it; its data comes from the guarded API.
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="panel")
    return app


def _guarded_static(directory: Path) -> FastAPI:
    """The analytics dashboard (a folder of files) behind the same access rule as GETs."""
    sub = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    errors.install(sub)
    guard = APIRouter(dependencies=[Depends(require_access)])

    @guard.get("/{path:path}", include_in_schema=False)
    def page(path: str) -> object:  # sync: FastAPI runs it on a thread (file system)
        from fastapi.responses import FileResponse

        root = directory.resolve()
        target = (root / (path or "index.html")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if root not in target.parents or not target.is_file():
            raise errors.problem(404, f"no report file {path!r}")
        return FileResponse(target)

    sub.include_router(guard)
    return sub
