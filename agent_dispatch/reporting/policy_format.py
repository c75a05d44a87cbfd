"""The dispatch figures as `stats` text, markdown lines and the dashboard's table rows."""

from __future__ import annotations

from typing import Any

from agent_dispatch.reporting.format import pct, table

DISPATCH_HEAD = [
    "CATEGORY",
    "JOBS",
    "CALLS",
    "CALLS/JOB",
    "NOT STARTED",
    "HEDGED",
    "POLICIES",
    "STRATEGIES",
    "EXPLORED",
    "EXPL WON",
]


def _mix(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def per_job(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def dispatch_cells(r: dict[str, Any]) -> list[str]:
    return [
        r["category"],
        str(r["jobs"]),
        str(r["calls_started"]),
        per_job(r["calls_per_job"]),
        str(r["reserved_unstarted"]),
        str(r["hedged_jobs"]),
        _mix(r["by_policy"]),
        _mix(r["by_strategy"]),
        f"{r['exploration_picks']} ({r['exploration_started']} called)",
        f"{r['exploration_wins']} ({pct(r['exploration_win_rate'])})",
    ]


def _rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [d["overall"], *d["categories"]] if d["overall"]["jobs"] else []


def text_lines(d: dict[str, Any]) -> list[str]:
    """`stats` text: the overall row ('*') and one per category; nothing without ended jobs."""
    rows = _rows(d)
    if not rows:
        return []
    return [
        "",
        "dispatch (calls started per ended job; NOT STARTED: reserved, never called — the "
        "hedge's savings; HEDGED: a call started after the first one's wait)",
        table([dispatch_cells(r) for r in rows], DISPATCH_HEAD),
    ]


def markdown_lines(d: dict[str, Any]) -> list[str]:
    rows = _rows(d)
    if not rows:
        return []
    out = ["", "## Dispatch", "", "| " + " | ".join(DISPATCH_HEAD) + " |"]
    out.append("|" + "---|" * len(DISPATCH_HEAD))
    out += ["| " + " | ".join(dispatch_cells(r)) + " |" for r in rows]
    return out
