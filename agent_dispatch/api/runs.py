"""`/api/stats`, `/api/runs`, `/api/health` and `/api/meta`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query, Request
from sqlalchemy.exc import SQLAlchemyError

from agent_dispatch import __version__
from agent_dispatch.api.errors import problem
from agent_dispatch.api.jobs import utc
from agent_dispatch.api.links import flow_run_url, prefect_ui_url
from agent_dispatch.api.schemas import Check, HealthOut, Meta, RunIn, RunStarted
from agent_dispatch.bootstrap import Runtime
from agent_dispatch.clients.queue import RemoteQueueClient
from agent_dispatch.clients.retry import RetryPolicy
from agent_dispatch.db.engine import ping
from agent_dispatch.db.types import utcnow

router = APIRouter(tags=["runs and health"])
log = logging.getLogger("agent_dispatch.api")
DEPLOYMENT = "dispatch/dispatch"  # flow name / deployment name (prefect.yaml and `serve`)
CHECK_SECONDS = 5.0


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


def camel_doc(value: Any) -> Any:
    """The stats document with camelCase keys (values untouched)."""
    if isinstance(value, dict):
        return {_camel(str(k)): camel_doc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_doc(v) for v in value]
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@router.get("/stats", summary="The numbers of `agent-dispatch stats --json`")
async def stats(
    request: Request,
    since: Annotated[dt.datetime | None, Query(description="ISO-8601; default all time")] = None,
) -> dict[str, Any]:
    from agent_dispatch.services.stats import stats_document

    rt, start, now = _rt(request), utc(since), utcnow()
    if start is not None and start >= now:
        raise problem(422, "since is in the future", "since")
    try:
        return dict(camel_doc(await asyncio.to_thread(stats_document, rt, start, now)))
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise problem(503, f"cannot read statistics ({first})") from None


@router.post("/runs", response_model=RunStarted, status_code=202, summary="Start a dispatch run")
async def start_run(request: Request, params: RunIn | None = None) -> RunStarted:
    """Through the `dispatch` deployment when one is deployed, else in this process."""
    from prefect.exceptions import PrefectHTTPStatusError

    from agent_dispatch.flows.dispatch import DispatchParams

    wanted = DispatchParams(**(params or RunIn()).model_dump())
    try:
        return await _start(wanted)
    except (httpx.HTTPError, PrefectHTTPStatusError, OSError) as exc:
        raise problem(503, f"the Prefect API cannot start a run: {_first_line(exc)}") from None


async def _start(wanted: Any) -> RunStarted:
    from prefect.client.orchestration import get_client
    from prefect.deployments import arun_deployment
    from prefect.exceptions import ObjectNotFound

    from agent_dispatch.flows.dispatch import dispatch_flow

    async with get_client() as client:
        try:
            await client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            deployed = False
        else:
            deployed = True
        if not deployed:
            flow_run = await client.create_flow_run(
                dispatch_flow, parameters={"params": wanted.model_dump()}
            )
    if deployed:
        flow_run = await arun_deployment(
            DEPLOYMENT, parameters={"params": wanted.model_dump()}, timeout=0, as_subflow=False
        )
        via = "deployment"
    else:
        _run_here(flow_run, wanted)
        via = "this process"
    run_id = str(flow_run.id)
    return RunStarted(flow_run_id=run_id, flow_run_url=flow_run_url(run_id), via=via)


def _run_here(flow_run: Any, params: Any) -> None:
    """Run the created flow run on a thread of its own: its own event loop and HTTP clients,
    so a long run never slows the API; the HTTP request returns at once."""
    from prefect.flow_engine import run_flow_async

    from agent_dispatch.flows.dispatch import dispatch_flow

    flow: Any = dispatch_flow

    def work() -> None:
        try:
            asyncio.run(run_flow_async(flow, flow_run=flow_run, parameters={"params": params}))
        except BaseException:
            log.exception("dispatch run %s failed", flow_run.id)

    threading.Thread(target=work, name=f"dispatch-{flow_run.id}", daemon=True).start()


@router.get("/health", response_model=HealthOut, summary="Database and queue reachability")
async def health(request: Request) -> HealthOut:
    rt = _rt(request)
    database, queue = await asyncio.gather(_database(rt), _queue(rt))
    return HealthOut(ok=database.ok and queue.ok, database=database, queue=queue)


async def _database(rt: Runtime) -> Check:
    try:
        await asyncio.wait_for(asyncio.to_thread(ping, rt.engine), CHECK_SECONDS)
    except Exception as exc:
        return Check(ok=False, detail=f"{type(exc).__name__}: {_first_line(exc)}")
    return Check(ok=True, detail=rt.engine.dialect.name)


async def _queue(rt: Runtime) -> Check:
    s = rt.settings
    client = RemoteQueueClient(
        s.remote_queue_url,
        s.remote_queue_token.get_secret_value(),
        timeout=CHECK_SECONDS,
        retry=RetryPolicy(attempts=0),
    )
    try:
        await asyncio.wait_for(client.list_tasks(limit=1), CHECK_SECONDS)
    except Exception as exc:
        return Check(ok=False, detail=f"{type(exc).__name__}: {_first_line(exc)}")
    finally:
        await client.aclose()
    return Check(ok=True, detail=s.remote_queue_url)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else "unreachable"


def _has_report(folder: Any) -> bool:
    return folder is not None and (folder / "index.html").is_file()


@router.get("/meta", response_model=Meta, summary="Links and access mode, for the panel")
async def meta(request: Request) -> Meta:
    s = _rt(request).settings
    return Meta(
        version=__version__,
        prefect_ui_url=prefect_ui_url(),
        dashboard_url="/report/" if _has_report(request.app.state.report_dir) else None,
        auth_required=bool(s.api_token.get_secret_value()),
        public_read=s.api_public_read,
    )
