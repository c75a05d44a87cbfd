"""Helpers shared by the reliability tests: seed agents and jobs, take leases, age them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Agent, Job
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.lease import Lease
from agent_dispatch.domain.matching import Decision
from agent_dispatch.domain.model import JobSpec


def add_agent(
    rt: Runtime, name: str, url: str = "http://127.0.0.1:9/agents/x", **kw: object
) -> str:
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


def store(rt: Runtime, qid: str, **spec: object) -> str:
    with rt.uow() as uow:
        job_id = uow.jobs.intake(
            JobSpec(queue_task_id=qid, title=f"job {qid}", category="general", **spec)
        )  # type: ignore[arg-type]
        uow.commit()
        return job_id


def claim(rt: Runtime, qid: str, owner: str = "w1", seconds: int = 300) -> Lease:
    with rt.uow() as uow:
        leases = uow.jobs.claim_open([qid], owner, seconds, utcnow())
        uow.commit()
    assert len(leases) == 1, f"{owner} could not claim {qid}"
    return leases[0]


def age_lease(rt: Runtime, job_id: str, seconds: float = 60) -> None:
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


def job(rt: Runtime, job_id: str) -> Job:
    with rt.uow() as uow:
        found = uow.jobs.get(job_id)
        assert found is not None
        return found
