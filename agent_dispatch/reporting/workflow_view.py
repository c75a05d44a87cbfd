"""Workflow figures as the dashboard shows them (HTML tables) and `stats` prints them (text).

Both read the `workflows` part of the stats document (WorkflowFigures.document()), so the
page, the terminal and /api/stats show the same numbers.
"""

from __future__ import annotations

from html import escape
from typing import Any

from agent_dispatch.reporting.format import ms, pct, table

RUN_HEAD = ["WORKFLOW", "RUNS", "DONE", "FAILED", "SUCCESS", "P50", "P95", "MAX"]
STEP_HEAD = ["WORKFLOW", "STEP", "TRIES", "DONE", "FAILED", "SKIPPED", "SUCCESS", "P50", "P95"]


def _seconds(value: float | None) -> str:
    return ms(None if value is None else value * 1000)


def run_cells(r: dict[str, Any]) -> list[str]:
    return [
        r["workflow"],
        str(r["runs"]),
        str(r["completed"]),
        str(r["failed"]),
        pct(r["success_rate"]),
        _seconds(r["p50_s"]),
        _seconds(r["p95_s"]),
        _seconds(r["max_s"]),
    ]


def step_cells(s: dict[str, Any]) -> list[str]:
    return [
        s["workflow"],
        s["step_id"],
        str(s["tries"]),
        str(s["completed"]),
        str(s["failed"]),
        str(s["skipped"]),
        pct(s["success_rate"]),
        ms(s["p50_ms"]),
        ms(s["p95_ms"]),
    ]


def text_lines(flows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """`stats` text: nothing at all when no workflow run or step ended in the window."""
    if not flows["runs"] and not flows["steps"]:
        return []
    lines = ["", "workflow runs (first start -> end; durations of completed runs)"]
    lines.append(table([run_cells(r) for r in flows["runs"]], RUN_HEAD))
    lines += ["", "workflow steps (taken -> finished; latency of completed tries)"]
    lines.append(table([step_cells(s) for s in flows["steps"]], STEP_HEAD))
    return lines


def _html_table(head: list[str], rows: list[list[str]], keys: list[str]) -> str:
    th = "".join(f"<th>{escape(h.title())}</th>" for h in head)
    body = "".join(
        f'<tr data-key="{escape(k, True)}">'
        + "".join(f"<td>{escape(v)}</td>" for v in row)
        + "</tr>"
        for k, row in zip(keys, rows, strict=True)
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def html_section(flows: dict[str, list[dict[str, Any]]]) -> str:
    """The dashboard's workflow section (a note when no workflow ended in the window)."""
    runs, steps = flows["runs"], flows["steps"]
    if not runs and not steps:
        body = '<p class="empty">no workflow run or step ended in this window</p>'
    else:
        body = (
            "<h3>Whole runs</h3>"
            + _html_table(RUN_HEAD, [run_cells(r) for r in runs], [r["workflow"] for r in runs])
            + "<h3>Steps</h3>"
            + _html_table(
                STEP_HEAD,
                [step_cells(s) for s in steps],
                [f"{s['workflow']}/{s['step_id']}" for s in steps],
            )
        )
    return (
        '<section class="table wf" id="workflows"><h2>Workflows</h2>'
        "<p>Runs: first start to the parent's end, completed runs. Steps: taken to finished, "
        "completed tries; success = completed / (completed + failed), skipped steps aside. "
        "Step jobs are not counted in the job figures above.</p>"
        f"{body}</section>"
    )
