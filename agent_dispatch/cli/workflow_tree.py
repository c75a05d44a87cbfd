"""A workflow run's steps for `jobs show`: as data (JSON) and as a tree.

The steps form a graph; the tree hangs each step under the first step it needs and names
its other needs, so a diamond still reads top to bottom.
"""

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
            }
        )
    return out


def _line(step: dict[str, Any]) -> str:
    parts = [step["status"]]
    if step["tries"] > 1:
        parts.append(f"try {step['tries']}")
    if step["winner"]:
        parts.append(f"winner {step['winner']} in {step['winnerLatencyMs']:.0f} ms")
    if step["startMs"] is not None:
        end = f"{step['endMs'] / 1000:.2f}s" if step["endMs"] is not None else "..."
        parts.append(f"at +{step['startMs'] / 1000:.2f}s -> {end}")
    if len(step["needs"]) > 1:
        parts.append("also needs " + ", ".join(step["needs"][1:]))
    if step["error"]:
        parts.append(step["error"][:90])
    return "  ".join(parts)


def render_tree(steps: list[dict[str, Any]]) -> list[str]:
    """`├─ review  COMPLETED  winner reviewer in 402 ms  at +0.25s -> 0.66s` lines."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for step in steps:
        children.setdefault(step["needs"][0] if step["needs"] else None, []).append(step)
    width = max((len(s["stepId"]) for s in steps), default=0) + 2 * len(steps)
    lines: list[str] = []

    def walk(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, step in enumerate(kids):
            last = i == len(kids) - 1
            head = prefix + ("└─ " if last else "├─ ")
            lines.append(f"{(head + step['stepId']).ljust(width + 3)}  {_line(step)}")
            walk(step["stepId"], prefix + ("   " if last else "│  "))

    walk(None, "")
    return lines
