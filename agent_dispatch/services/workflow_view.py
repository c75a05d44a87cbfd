"""A workflow run's steps as data, for `jobs show` and the HTTP API: each step's latest try
in the workflow's order, with its needs, status, tries, winner and timings (ms from the
parent's start)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent_dispatch.db.models import Job
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.workflow import from_document


def _ms(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    return round((b - a).total_seconds() * 1000, 1) if a and b else None


def steps_of(uow: UnitOfWork, parent: Job) -> list[dict[str, Any]]:
    """Every step's latest try, in the workflow's order, with needs, winner and timings."""
    doc = uow.workflows.run_definition(parent.id)
    order = from_document(doc).order() if doc else []
    needs = {s["id"]: list(s.get("needs") or ()) for s in (doc or {}).get("steps", [])}
    latest: dict[str, Job] = {}
    tries: dict[str, int] = {}
    for step in uow.workflows.steps(parent.id):
        assert step.step_id is not None
        latest[step.step_id] = step
        tries[step.step_id] = tries.get(step.step_id, 0) + 1
    origin = parent.distributed_at or parent.created_at
    out = []
    for sid in order + [s for s in latest if s not in order]:
        job = latest.get(sid)
        rows = [r for d in job.distributions for r in d.agents] if job else []
        winner = next((r for r in rows if r.won), None)
        out.append(
            {
                "stepId": sid,
                "needs": needs.get(sid, []),
                "jobId": job.id if job else None,
                "queueTaskId": job.queue_task_id if job else None,
                "status": job.status if job else "WAITING",
                "tries": tries.get(sid, 0),
                "winner": winner.agent_name if winner else None,
                "winnerLatencyMs": winner.latency_ms if winner else None,
                "agents": len(rows),
                "startMs": _ms(origin, job.distributed_at) if job else None,
                "endMs": _ms(origin, job.finished_at) if job else None,
                "error": job.error if job else None,
                "skippedReason": job.error if job and job.status == "SKIPPED" else None,
            }
        )
    return out
