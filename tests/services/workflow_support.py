"""Helpers for workflow tests on the fast tier: register, claim, run, and read steps back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Job, JobDistributionAgent
from agent_dispatch.services.dispatching import JobLine
from agent_dispatch.services.intake import Claim, lease_rescued, store_and_lease
from agent_dispatch.services.queue_io import fetch_open_page
from agent_dispatch.services.workflow_runs import plain_step, run_workflow
from agent_dispatch.services.workflows import add_workflow

EXAMPLE = (Path(__file__).parents[2] / "docs/examples/write-review-translate.yaml").read_text()


def register(deps: Runtime, text: str = EXAMPLE) -> None:
    add_workflow(deps, text, replace=True)


async def claim_all(deps: Runtime) -> list[Claim]:
    page = await fetch_open_page(deps, None, 50)
    return (await store_and_lease(deps, page.tasks, len(page.tasks))).claims


async def run(deps: Runtime, claim: Claim) -> JobLine:
    return await run_workflow(deps, claim, plain_step(deps, capacity_wait=0))


async def run_rescued(deps: Runtime) -> list[JobLine]:
    return [await run(deps, c) for c in await lease_rescued(deps, 10)]


def parent(deps: Runtime, qid: str) -> Job:
    with deps.uow() as uow:
        job = uow.jobs.find(qid)
        assert job is not None
        return job


def steps(deps: Runtime, qid: str) -> dict[str, list[Job]]:
    """Step jobs by step id, every try in order."""
    out: dict[str, list[Job]] = {}
    with deps.uow() as uow:
        job = uow.jobs.find(qid)
        assert job is not None
        for step in uow.workflows.steps(job.id):
            assert step.step_id is not None
            out.setdefault(step.step_id, []).append(step)
    return out


def statuses(deps: Runtime, qid: str) -> dict[str, str]:
    return {sid: tries[-1].status for sid, tries in steps(deps, qid).items()}


def calls_of(deps: Runtime, job: Job) -> list[JobDistributionAgent]:
    with deps.uow() as uow:
        return [
            r
            for d in uow.jobs.get(job.id).distributions  # type: ignore[union-attr]
            for r in d.agents
        ]


def span(deps: Runtime, job: Job) -> tuple[dt.datetime, dt.datetime]:
    """When the step's winning call started and ended."""
    rows = [r for r in calls_of(deps, job) if r.started_at and r.finished_at]
    return min(r.started_at for r in rows), max(r.finished_at for r in rows)  # type: ignore[type-var]


def overlap_seconds(
    a: tuple[dt.datetime, dt.datetime], b: tuple[dt.datetime, dt.datetime]
) -> float:
    return (min(a[1], b[1]) - max(a[0], b[0])).total_seconds()


def patched(queue: Any) -> dict[str, list[str]]:
    """Status PATCHes the queue accepted, by task id."""
    out: dict[str, list[str]] = {}
    for p in queue.patches:
        if p.status_code == 200:
            out.setdefault(p.task_id, []).append(p.body["status"])
    return out
