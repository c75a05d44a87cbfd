"""Helpers shared by the reliability tests: seed agents and jobs, take leases, age them."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from agent_dispatch.db.models import Agent, Job, JobDistributionAgent, JobDistributionRecord
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.lease import Lease
from agent_dispatch.domain.matching import Decision
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import AgentRunStatus, JobStatus
from agent_dispatch.services.deps import Deps

if TYPE_CHECKING:
    from agent_dispatch.simulators.queue import SimulatedQueue


def add_agent(rt: Deps, name: str, url: str = "http://127.0.0.1:9/agents/x", **kw: object) -> str:
    with rt.uow() as uow:
        agent = uow.agents.add(
            Agent(
                **{
                    "name": name,
                    "url": url,
                    "categories": ["general"],
                    "skill_level": 3,
                    "max_concurrency": 5,
                    **kw,
                }
            )
        )
        uow.commit()
        return agent.id


def store(rt: Deps, qid: str, **spec: object) -> str:
    with rt.uow() as uow:
        job_id = uow.jobs.intake(
            JobSpec(queue_task_id=qid, title=f"job {qid}", category="general", **spec)
        )  # type: ignore[arg-type]
        uow.commit()
        return job_id


def claim(rt: Deps, qid: str, owner: str = "w1", seconds: int = 300) -> Lease:
    with rt.uow() as uow:
        leases = uow.jobs.claim_open([qid], owner, seconds, utcnow())
        uow.commit()
    assert len(leases) == 1, f"{owner} could not claim {qid}"
    return leases[0]


def age_lease(rt: Deps, job_id: str, seconds: float = 60) -> None:
    """Make a job's lease look expired (as if its worker died `seconds` ago)."""
    with rt.uow() as uow:
        uow.session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=utcnow() - dt.timedelta(seconds=seconds))
        )
        uow.commit()


def decisions(*agents: tuple[str, str]) -> list[Decision]:
    return [
        Decision(aid, name, True, True, "test", 1.0, i + 1) for i, (aid, name) in enumerate(agents)
    ]


def job(rt: Deps, job_id: str) -> Job:
    with rt.uow() as uow:
        found = uow.jobs.get(job_id)
        assert found is not None
        return found


def in_progress(
    rt: Deps,
    queue: SimulatedQueue,
    *,
    attempts: int = 1,
    agent_url: str = "http://127.0.0.1:9/agents/x",
    started_ago: float = 3600,
    lease_lost: bool = True,
    **spec: object,
) -> tuple[str, str]:
    """A job IN_PROGRESS on both sides: one WORKING row (its call started `started_ago`
    seconds ago, at `agent_url`) and one ASSIGNED row; with `lease_lost`, its worker died."""
    task = queue.add_task(title="t", category="general")
    a1 = add_agent(rt, f"a1-{task['id']}", agent_url)
    a2 = add_agent(rt, f"a2-{task['id']}")
    queue.set_status(task["id"], "IN_PROGRESS")
    job_id = store(rt, task["id"], **spec)
    lease = claim(rt, task["id"])
    with rt.uow() as uow:
        dist = uow.distributions.create(lease, decisions((a1, "a1"), (a2, "a2")), utcnow())
        uow.jobs.transition(lease, JobStatus.DISTRIBUTED, utcnow(), queue_status="DISTRIBUTED")
        uow.jobs.transition(lease, JobStatus.IN_PROGRESS, utcnow(), queue_status="IN_PROGRESS")
        uow.distributions.move_agent(
            lease,
            dist.assignments[0].row_id,
            AgentRunStatus.WORKING,
            started_at=utcnow() - dt.timedelta(seconds=started_ago),
        )
        uow.session.execute(update(Job).where(Job.id == job_id).values(attempts=attempts))
        uow.commit()
    if lease_lost:
        age_lease(rt, job_id)
    return job_id, task["id"]


def rows(rt: Deps, job_id: str) -> list[JobDistributionAgent]:
    """A job's agent rows, in rank order."""
    with rt.uow() as uow:
        return list(
            uow.session.scalars(
                select(JobDistributionAgent)
                .join(JobDistributionRecord)
                .where(JobDistributionRecord.job_id == job_id)
                .order_by(JobDistributionAgent.rank)
            ).all()
        )


def attempts_of(rt: Deps, job_id: str) -> list[str]:
    """The statuses of a job's distribution records, oldest first."""
    with rt.uow() as uow:
        return list(
            uow.session.scalars(
                select(JobDistributionRecord.status)
                .where(JobDistributionRecord.job_id == job_id)
                .order_by(JobDistributionRecord.attempt)
            ).all()
        )
