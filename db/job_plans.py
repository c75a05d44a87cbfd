"""What planning reads of many leased jobs at once (part of JobRepository, kept apart by
role): one lease check for a batch. Planning writes nothing (services/planning.plan_jobs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from agent_dispatch.db.models import Job
from agent_dispatch.domain.lease import Lease

JobRow = Row[*tuple[Any, ...]]  # a leased job's columns below, by name

# What planning reads of a leased job: its spec (job_repository.spec_of), status and attempts.
# Core rows, not ORM objects: a plan reads them once.
_PLANNED = select(
    Job.id,
    Job.lease_token,
    Job.status,
    Job.attempts,
    Job.queue_task_id,
    Job.title,
    Job.category,
    Job.tags,
    Job.skill_level,
    Job.description,
    Job.payload,
    Job.max_agents,
    Job.timeout_ms,
    Job.expires_at,
    Job.workflow,
    Job.parent_job_id,
    Job.step_id,
    Job.result_strategy,
)


class JobPlans:
    session: Session

    def leased_many(self, leases: Sequence[Lease]) -> dict[str, JobRow]:
        """The jobs whose lease still holds, by id, in one query (a lost one is absent)."""
        if not leases:
            return {}
        token_of = {le.job_id: le.token for le in leases}
        rows = self.session.connection().execute(_PLANNED.where(Job.id.in_(sorted(token_of))))
        return {r.id: r for r in rows if r.lease_token == token_of[r.id]}
