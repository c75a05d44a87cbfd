"""A workflow run's steps for `jobs show`: as data (JSON) and as a tree.

The steps form a graph; the tree hangs each step under the first step it needs and names
its other needs, so a diamond still reads top to bottom.
"""

from __future__ import annotations

from typing import Any

from agent_dispatch.services.workflow_view import steps_of

__all__ = ["render_tree", "steps_of"]  # steps_of: shared with the HTTP API


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
