"""`/api/jobs`: pages of jobs, one job with its attempts, cancel."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from agent_dispatch.api.admin import AdminError, cancel_job
from agent_dispatch.api.errors import problem
from agent_dispatch.api.links import flow_run_url
from agent_dispatch.api.schemas import (
    AgentRunOut,
    AttemptOut,
    Cancelled,
    JobDetail,
    JobKind,
    JobOut,
    JobPage,
)
from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.job_queries import (
    JobFilter,
    LatestRun,
    agent_names,
    job_with_runs,
    latest_runs,
    page_jobs,
)
from agent_dispatch.db.models import Job, JobDistributionRecord
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.workflow_view import steps_of

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _ms(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    return round((b - a).total_seconds() * 1000, 1) if a and b else None


def utc(moment: dt.datetime | None) -> dt.datetime | None:
    """ISO-8601 without an offset is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, job_id = raw.split("|", 1)
        moment = utc(dt.datetime.fromisoformat(at))
        assert moment is not None and job_id
        return moment, job_id
    except (binascii.Error, UnicodeDecodeError, ValueError, AssertionError):
        raise problem(422, "not a cursor from a previous page", "cursor") from None


def kind_of(job: Job) -> JobKind:
    if job.parent_job_id is not None:
        return "step"
    return "workflow" if job.workflow else "job"


def summary(
    job: Job,
    run: LatestRun | None,
    winner_name: str | None = None,
    parents: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`parents`: job id -> queue task id of the parents of step jobs among those listed."""
    return {
        "id": job.id,
        "queue_task_id": job.queue_task_id,
        "kind": kind_of(job),
        "workflow": job.workflow,
        "step_id": job.step_id,
        "parent_job_id": job.parent_job_id,
        "parent_queue_task_id": (parents or {}).get(job.parent_job_id or ""),
        "title": job.title,
        "category": job.category,
        "tags": job.tags,
        "skill_level": job.skill_level,
        "status": job.status,
        "queue_status": job.queue_status,
        "attempts": job.attempts,
        "winner": (run.winner if run else None) or winner_name,
        "winner_latency_ms": run.winner_latency_ms if run else None,
        "error": job.error,
        "match_summary": job.match_summary,
        "created_at": job.created_at,
        "distributed_at": job.distributed_at,
        "finished_at": job.finished_at,
        "end_to_end_ms": _ms(job.distributed_at, job.finished_at),
        "flow_run_id": run.flow_run_id if run else None,
        "flow_run_url": flow_run_url(run.flow_run_id if run else None),
    }


def _attempt(d: JobDistributionRecord) -> AttemptOut:
    return AttemptOut(
        id=d.id,
        attempt=d.attempt,
        status=d.status,
        flow_run_id=d.flow_run_id,
        flow_run_url=flow_run_url(d.flow_run_id),
        started_at=d.started_at,
        first_result_at=d.first_result_at,
        finished_at=d.finished_at,
        time_to_first_result_ms=_ms(d.started_at, d.first_result_at),
        error=d.error,
        agents=[
            AgentRunOut(
                agent=r.agent_name,
                agent_id=r.agent_id,
                rank=r.rank,
                status=r.status,
                won=r.won,
                attempts=r.attempts,
                started_at=r.started_at,
                finished_at=r.finished_at,
                latency_ms=r.latency_ms,
                failure_kind=r.failure_kind,
                error=r.error,
            )
            for r in d.agents
        ],
        decisions=[_camel_keys(x) for x in d.decisions],
    )


def _camel_keys(doc: dict[str, Any]) -> dict[str, Any]:
    def camel(key: str) -> str:
        head, *rest = key.split("_")
        return head + "".join(p.title() for p in rest)

    return {camel(k): v for k, v in doc.items()}


@router.get("", response_model=JobPage, summary="Jobs, newest first")
async def list_jobs(
    request: Request,
    status: JobStatus | None = None,
    category: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    since: Annotated[dt.datetime | None, Query(description="ISO-8601; no offset = UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
    kind: Annotated[JobKind | None, Query(description="job, workflow (parents) or step")] = None,
) -> JobPage:
    rt: Runtime = request.app.state.rt
    before = decode_cursor(cursor) if cursor else None
    where = JobFilter(status.value if status else None, category, utc(since), kind)

    def read() -> JobPage:
        with rt.uow() as uow:
            jobs = list(page_jobs(uow.session, where, limit + 1, before))
            more, jobs = len(jobs) > limit, jobs[:limit]
            runs = latest_runs(uow.session, [j.id for j in jobs])
            parents = uow.workflows.queue_task_ids(
                [j.parent_job_id for j in jobs if j.parent_job_id]
            )
            items = [JobOut.model_validate(summary(j, runs.get(j.id), None, parents)) for j in jobs]
            return JobPage(items=items, next_cursor=encode_cursor(jobs[-1]) if more else None)

    return await asyncio.to_thread(read)


# `:path`: a step job is named `<task id>/<step>`
@router.get("/{queue_task_id:path}", response_model=JobDetail, summary="One job with its attempts")
async def get_job(request: Request, queue_task_id: str) -> JobDetail:
    """By queue task id (or job id): agents, their statuses, timings, errors, why chosen."""
    rt: Runtime = request.app.state.rt

    def read() -> JobDetail | None:
        with rt.uow() as uow:
            job = job_with_runs(uow.session, queue_task_id)
            if job is None:
                return None
            runs = latest_runs(uow.session, [job.id])
            ids = [job.selected_agent_id] if job.selected_agent_id else []
            name = agent_names(uow.session, ids).get(job.selected_agent_id or "")
            parents = uow.workflows.queue_task_ids([job.parent_job_id] if job.parent_job_id else [])
            steps = steps_of(uow, job) if job.workflow and not job.parent_job_id else None
            return JobDetail.model_validate(
                {
                    **summary(job, runs.get(job.id), name, parents),
                    "steps": steps,  # camelCase keys: the schema's aliases
                    "description": job.description,
                    "payload": job.payload,
                    "result": job.result,
                    "expires_at": job.expires_at,
                    "distributions": [_attempt(d) for d in job.distributions],
                }
            )

    found = await asyncio.to_thread(read)
    if found is None:
        raise problem(404, f"no job {queue_task_id!r}")
    return found


@router.post("/{queue_task_id:path}/cancel", response_model=Cancelled, summary="Cancel a job")
async def cancel(request: Request, queue_task_id: str) -> Cancelled:
    """Agents told to stop, the queue told CANCELLED; 409 when the job already ended."""
    rt: Runtime = request.app.state.rt
    try:
        qid, message = await cancel_job(rt, queue_task_id)
    except AdminError as exc:
        raise problem(exc.status, str(exc), exc.field) from None
    return Cancelled(queue_task_id=qid, status=JobStatus.CANCELLED, message=message)
