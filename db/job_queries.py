"""Reads for the HTTP API: pages of jobs (keyset on created_at, id) and what each run did."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from agent_dispatch.db.models import Agent, Job, JobDistributionAgent, JobDistributionRecord


@dataclasses.dataclass(frozen=True, slots=True)
class JobFilter:
    status: str | None = None
    category: str | None = None
    since: dt.datetime | None = None  # created at or after
    kind: str | None = None  # "job" (plain), "workflow" (a parent), "step" (a workflow's step)


@dataclasses.dataclass(frozen=True, slots=True)
class LatestRun:
    """The newest attempt of a job: its flow run, and the winner when it has one."""

    flow_run_id: str | None
    winner: str | None
    winner_latency_ms: float | None


def page_jobs(
    session: Session,
    where: JobFilter,
    limit: int,
    before: tuple[dt.datetime, str] | None = None,
) -> Sequence[Job]:
    """Newest first; `before` is the (created_at, id) of the last job of the previous page."""
    stmt = select(Job)
    if where.status is not None:
        stmt = stmt.where(Job.status == where.status)
    if where.category is not None:
        stmt = stmt.where(Job.category == where.category)
    if where.since is not None:
        stmt = stmt.where(Job.created_at >= where.since)
    if where.kind == "step":
        stmt = stmt.where(Job.parent_job_id.is_not(None))
    elif where.kind == "workflow":
        stmt = stmt.where(Job.parent_job_id.is_(None), Job.workflow.is_not(None))
    elif where.kind == "job":
        stmt = stmt.where(Job.parent_job_id.is_(None), Job.workflow.is_(None))
    if before is not None:
        at, job_id = before
        stmt = stmt.where(or_(Job.created_at < at, and_(Job.created_at == at, Job.id < job_id)))
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return session.scalars(stmt).all()


def latest_runs(session: Session, job_ids: Sequence[str]) -> dict[str, LatestRun]:
    if not job_ids:
        return {}
    records = session.scalars(
        select(JobDistributionRecord)
        .where(JobDistributionRecord.job_id.in_(list(job_ids)))
        .order_by(JobDistributionRecord.attempt)
    ).all()
    newest = {r.job_id: r for r in records}  # the last attempt wins the dict
    won = session.execute(
        select(
            JobDistributionAgent.distribution_id,
            JobDistributionAgent.agent_name,
            JobDistributionAgent.latency_ms,
        ).where(
            JobDistributionAgent.distribution_id.in_([r.id for r in newest.values()]),
            JobDistributionAgent.won.is_(True),
        )
    ).all()
    winners = {d: (name, ms) for d, name, ms in won}
    out = {}
    for job_id, r in newest.items():
        name, ms = winners.get(r.id, (None, None))
        out[job_id] = LatestRun(r.flow_run_id, name, ms)
    return out


def job_with_runs(session: Session, ref: str) -> Job | None:
    """One job by id or queue task id, with its attempts and agent rows loaded."""
    stmt = select(Job).options(
        selectinload(Job.distributions).selectinload(JobDistributionRecord.agents)
    )
    job = session.scalars(stmt.where(Job.id == ref)).one_or_none()
    if job is None:
        job = session.scalars(stmt.where(Job.queue_task_id == ref)).one_or_none()
    return job


def agent_names(session: Session, agent_ids: Sequence[str]) -> dict[str, str]:
    if not agent_ids:
        return {}
    rows = session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(list(agent_ids))))
    return {i: n for i, n in rows.tuples()}
