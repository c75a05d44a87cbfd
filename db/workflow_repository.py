"""Workflows: the registry, each run's snapshot, and its step jobs (rows of `jobs`).

A step job is written only while its parent's lease holds: a workflow run that lost its
parent (cancelled, rescued) cannot add steps behind the back of the run that has it now.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from agent_dispatch.db.change_log import record_job
from agent_dispatch.db.job_repository import JobRepository
from agent_dispatch.db.models import Job, new_id
from agent_dispatch.db.workflow_models import Workflow, WorkflowRun
from agent_dispatch.domain.lease import Lease
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JOB_TERMINAL, JobStatus


def step_task_id(parent_queue_task_id: str, parent_job_id: str, step_id: str, try_no: int) -> str:
    """A step job's own name: `<task>/<step>` (`#<try>` from the second try), never queued."""
    suffix = f"/{step_id}" + (f"#{try_no}" if try_no > 1 else "")
    name = parent_queue_task_id + suffix
    return name if len(name) <= 128 else parent_job_id + suffix


@dataclasses.dataclass(frozen=True, slots=True)
class RunStart:
    definition: dict[str, Any]  # the snapshot this run keeps to the end
    starts: int


class WorkflowRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- the registry --------------------------------------------------------------------------

    def get(self, name: str) -> Workflow | None:
        return self.session.get(Workflow, name)

    def list(self) -> Sequence[Workflow]:
        return self.session.scalars(select(Workflow).order_by(Workflow.name)).all()

    def save(self, name: str, description: str, definition: dict[str, Any], source: str) -> bool:
        """Register or replace; True when it is new."""
        found = self.get(name)
        if found is None:
            self.session.add(
                Workflow(name=name, description=description, definition=definition, source=source)
            )
            self.session.flush()
            return True
        found.description, found.definition, found.source = description, definition, source
        return False

    def remove(self, name: str) -> bool:
        res = self.session.execute(delete(Workflow).where(Workflow.name == name))
        return bool(res.rowcount)  # type: ignore[attr-defined]

    def open_jobs(self, name: str) -> int:
        """Queue tasks naming this workflow that are not finished (started or not)."""
        return (
            self.session.scalar(
                select(func.count())
                .select_from(Job)
                .where(
                    Job.workflow == name,
                    Job.parent_job_id.is_(None),
                    Job.status.not_in(JOB_TERMINAL),
                )
            )
            or 0
        )

    # -- runs ----------------------------------------------------------------------------------

    def _parent(self, lease: Lease) -> Job:
        return JobRepository(self.session).get_leased(lease)

    def start_run(
        self, lease: Lease, name: str, definition: dict[str, Any], now: dt.datetime
    ) -> RunStart:
        """Record the run (or one more start of it) and count the start as an attempt, so a
        run that keeps losing its worker ends FAILED like any job (rescue verdict)."""
        parent = self._parent(lease)
        parent.attempts += 1
        run = self.session.get(WorkflowRun, parent.id)
        if run is None:
            run = WorkflowRun(
                job_id=parent.id, workflow=name, definition=definition, started_at=now
            )
            self.session.add(run)
        else:
            run.starts += 1
        self.session.flush()
        return RunStart(run.definition, run.starts)

    def run_definition(self, job_id: str) -> dict[str, Any] | None:
        """The snapshot a run started with (None before its first start)."""
        run = self.session.get(WorkflowRun, job_id)
        return run.definition if run is not None else None

    def finish_run(self, job_id: str, now: dt.datetime) -> None:
        self.session.execute(
            update(WorkflowRun).where(WorkflowRun.job_id == job_id).values(finished_at=now)
        )

    def queue_task_ids(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Job id -> queue task id: the parents a page of step jobs links to."""
        if not job_ids:
            return {}
        rows = self.session.execute(
            select(Job.id, Job.queue_task_id).where(Job.id.in_(list(job_ids)))
        )
        return {i: q for i, q in rows.tuples()}

    def steps(self, parent_job_id: str) -> Sequence[Job]:
        """Every step job of a run, every try, in the order they were made."""
        return self.session.scalars(
            select(Job)
            .where(Job.parent_job_id == parent_job_id)
            .order_by(Job.created_at, Job.step_try)
        ).all()

    def add_step(
        self,
        parent: Lease,
        spec: JobSpec,
        try_no: int,
        now: dt.datetime,
        *,
        lease_seconds: int,
        skipped_because: str | None = None,
    ) -> Lease | None:
        """Store a step job leased to the parent's holder (OPEN), or SKIPPED with the reason."""
        self._parent(parent)  # raises LeaseLost unless the parent is still ours
        skipped = skipped_because is not None
        job = Job(
            id=new_id(),
            queue_task_id=spec.queue_task_id,
            title=spec.title,
            description=spec.description,
            category=spec.category,
            tags=list(spec.tags),
            skill_level=spec.skill_level,
            payload=spec.payload,
            max_agents=spec.max_agents,
            timeout_ms=spec.timeout_ms,
            expires_at=spec.expires_at,
            status=(JobStatus.SKIPPED if skipped else JobStatus.OPEN).value,
            attempts=0,
            parent_job_id=spec.parent_job_id,
            step_id=spec.step_id,
            step_try=try_no,
            error=skipped_because,
            created_at=now,
            updated_at=now,
            finished_at=now if skipped else None,
        )
        self.session.add(job)
        self.session.flush()
        # The live feed sees each step appear, as it sees a queue task arrive.
        record_job(
            self.session,
            job.id,
            job.queue_task_id,
            job.status,
            {"error": skipped_because},
            parent_job_id=job.parent_job_id,
        )
        if skipped:
            return None
        return JobRepository(self.session).grant_leases([job.id], parent.owner, lease_seconds, now)[
            0
        ]

    def claim_step(self, job_id: str, owner: str, seconds: int, now: dt.datetime) -> Lease | None:
        """Lease an unfinished step job nobody holds (its worker died or released it)."""
        free = or_(Job.lease_token.is_(None), Job.lease_expires_at < now)
        found = self.session.scalars(
            select(Job.id)
            .where(and_(Job.id == job_id, Job.status.not_in(JOB_TERMINAL), free))
            .with_for_update(skip_locked=True)
        ).one_or_none()
        if found is None:
            return None
        return JobRepository(self.session).grant_leases([found], owner, seconds, now)[0]
