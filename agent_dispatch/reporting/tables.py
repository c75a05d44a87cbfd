"""The dashboard's HTML tables: the agent leaderboard, the workflow and dispatch sections.

The workflow section reads the `workflows` part of the stats document
(WorkflowFigures.document()), so the page, the terminal and /api/stats show the same numbers.
"""

from __future__ import annotations

from html import escape
from typing import Any

from agent_dispatch.reporting.compute import Overview
from agent_dispatch.reporting.format import RUN_HEAD, STEP_HEAD, ms, pct, run_cells, step_cells
from agent_dispatch.reporting.policy_format import DISPATCH_HEAD, dispatch_cells
from agent_dispatch.reporting.stats import leaderboard


def leaderboard_table(overview: Overview) -> str:
    head = (
        "#",
        "Agent",
        "Calls",
        "Wins",
        "Win rate",
        "Success",
        "Failed",
        "Timeouts",
        "HTTP",
        "Invalid",
        "Lost (cancelled)",
        "p50",
        "p90",
        "p99",
    )
    rows = []
    for r in leaderboard(overview):
        cells = (
            r["rank"],
            r["agent"],
            r["calls"],
            r["wins"],
            pct(r["win_rate"]),
            pct(r["success_rate"]),
            r["failed"],
            r["timeouts"],
            r["http_errors"],
            r["invalid_answers"],
            r["cancelled"],
            ms(r["latency_p50_ms"]),
            ms(r["latency_p90_ms"]),
            ms(r["latency_p99_ms"]),
        )
        rows.append(
            f'<tr data-agent="{escape(r["agent"], True)}">'
            + "".join(f"<td>{escape(str(v))}</td>" for v in cells)
            + "</tr>"
        )
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


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


def dispatch_section(d: dict[str, Any]) -> str:
    """The dashboard's dispatch section: the `dispatch` part of the stats document."""
    rows = [d["overall"], *d["categories"]] if d["overall"]["jobs"] else []
    if not rows:
        body = '<p class="empty">no job ended in this window</p>'
    else:
        body = _html_table(
            DISPATCH_HEAD, [dispatch_cells(r) for r in rows], [r["category"] for r in rows]
        )
    return (
        '<section class="table" id="dispatch"><h2>Dispatch</h2>'
        "<p>Per category and overall (*): agent calls started per ended job; agents reserved "
        "but never started (what hedging saved); jobs where a call started after the first "
        "one had waited (a hedge backup or an escalation); jobs by dispatch policy and result "
        "strategy (the rules in force; a task's own resultStrategy first); exploration picks "
        "and how often they won when called.</p>"
        f"{body}</section>"
    )
