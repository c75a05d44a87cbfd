"""The numbers at a glance: job and call success/error rates, execution times, per-agent table.

`agent-dispatch stats`, the dashboard headline and the leaderboard artifact all come from
`glance()` over the same window totals, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any

from agent_dispatch.reporting import policy_format
from agent_dispatch.reporting.aggregate import plain
from agent_dispatch.reporting.compute import Overview
from agent_dispatch.reporting.format import ms, pct, table, text_lines

AGENT_FIELDS = (
    "calls",
    "completed",
    "failed",
    "timeouts",
    "http_errors",
    "connection_errors",
    "invalid_answers",
    "agent_failures",
    "blocked",
    "cancelled",
    "wins",
    "success_rate",
    "win_rate",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "throughput_per_hour",
)


def _rate(num: float | int | None, den: float | int | None) -> float | None:
    return None if not den or num is None else num / den


def leaderboard(overview: Overview) -> list[dict[str, Any]]:
    """One dict per agent, best first: most wins, then success rate, then fastest p50."""
    rows = []
    for _, r in overview.agents.iterrows():
        row: dict[str, Any] = {"agent": str(r["agent_name"]), "agent_id": r["agent_id"]}
        row.update({f: plain(r[f]) for f in AGENT_FIELDS})
        rows.append(row)
    rows.sort(
        key=lambda r: (
            -r["wins"],
            -(r["success_rate"] or 0.0),
            r["latency_p50_ms"] if r["latency_p50_ms"] is not None else 1e18,
            r["agent"],
        )
    )
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def glance(overview: Overview) -> dict[str, Any]:
    """Window totals as one JSON-friendly document."""
    j, c = overview.jobs, overview.calls
    decided = c["completed"] + c["failed"]
    samples = int(overview.agents["latency_samples"].sum())
    latency_sum = float(
        (overview.agents["latency_mean_ms"].fillna(0) * overview.agents["latency_samples"]).sum()
    )
    failed_jobs = int(j["failed"] or 0) + int(j["expired"] or 0)
    return {
        "window": {
            "start": overview.window.start.isoformat(),
            "end": overview.window.end.isoformat(),
        },
        "jobs": {
            "finished": j["jobs"],
            "completed": j["completed"],
            "failed": j["failed"],
            "expired": j["expired"],
            "cancelled": j["cancelled"],
            "success_rate": _rate(j["completed"], j["jobs"]),
            "error_rate": _rate(failed_jobs, j["jobs"]),
            "avg_end_to_end_ms": j["e2e_mean_ms"],
            "time_to_first_result_p50_ms": j["ttfr_p50_ms"],
            "time_to_first_result_p90_ms": j["ttfr_p90_ms"],
        },
        "calls": {
            **c,
            "success_rate": _rate(c["completed"], decided),
            "error_rate": _rate(c["failed"], decided),
            "avg_execution_ms": latency_sum / samples if samples else None,
        },
        "agents": leaderboard(overview),
        "workflows": overview.workflows.document(),  # runs and steps that ended in the window
        "dispatch": overview.dispatch.document(),  # policies, hedging, strategies, exploration
    }


def render_text(g: dict[str, Any]) -> str:
    """The human form of `glance()` for the terminal."""
    j, c = g["jobs"], g["calls"]
    lines = [
        f"statistics {g['window']['start'] or 'all time'} .. {g['window']['end']}",
        f"jobs: {j['finished']} finished — {j['completed']} completed, {j['failed']} failed, "
        f"{j['expired']} expired, {j['cancelled']} cancelled",
        f"job success rate {pct(j['success_rate'])}, error rate {pct(j['error_rate'])} "
        f"(failed + expired), average end-to-end {ms(j['avg_end_to_end_ms'])}, "
        f"time to first result p50 {ms(j['time_to_first_result_p50_ms'])}",
        f"agent calls: {c['calls']} — success rate {pct(c['success_rate'])}, error rate "
        f"{pct(c['error_rate'])}, average execution time {ms(c['avg_execution_ms'])}; "
        f"{c['cancelled']} cancelled as losers (not failures), {c['blocked']} blocked",
    ]
    if g["agents"]:
        rows = [
            [
                str(a["rank"]),
                a["agent"],
                str(a["calls"]),
                str(a["wins"]),
                pct(a["win_rate"]),
                pct(a["success_rate"]),
                str(a["failed"]),
                str(a["timeouts"]),
                str(a["http_errors"]),
                str(a["invalid_answers"]),
                str(a["cancelled"]),
                ms(a["latency_mean_ms"]),
                ms(a["latency_p90_ms"]),
            ]
            for a in g["agents"]
        ]
        headers = [
            "#",
            "AGENT",
            "CALLS",
            "WINS",
            "WIN",
            "SUCCESS",
            "FAILED",
            "TIMEOUT",
            "HTTP",
            "INVALID",
            "LOST",
            "AVG",
            "P90",
        ]
        lines += ["", table(rows, headers)]
    else:
        lines.append("no agent calls ended in this window")
    lines += policy_format.text_lines(g["dispatch"])
    lines += text_lines(g["workflows"])
    return "\n".join(lines)


def render_markdown(g: dict[str, Any], notes: list[str]) -> str:
    """The summary artifact: headline numbers, failures by kind, top agents, then `notes`."""
    j, c = g["jobs"], g["calls"]
    top = g["agents"][:5]
    kinds = ("timeouts", "http_errors", "connection_errors", "invalid_answers", "agent_failures")
    failures = {k: sum(a[k] for a in g["agents"]) for k in kinds}
    lines = [
        "# agent-dispatch analytics",
        f"Window **{g['window']['start']}** .. **{g['window']['end']}**",
        "",
        "| measure | value |",
        "|---|---|",
        f"| jobs finished | {j['finished']} |",
        f"| completed / failed / expired / cancelled | {j['completed']} / {j['failed']} / "
        f"{j['expired']} / {j['cancelled']} |",
        f"| job success rate | {pct(j['success_rate'])} |",
        f"| job error rate (failed + expired) | {pct(j['error_rate'])} |",
        f"| time to first result p50 / p90 | {ms(j['time_to_first_result_p50_ms'])} / "
        f"{ms(j['time_to_first_result_p90_ms'])} |",
        f"| average end-to-end | {ms(j['avg_end_to_end_ms'])} |",
        f"| agent calls | {c['calls']} |",
        f"| call success rate | {pct(c['success_rate'])} |",
        f"| cancelled losers (not failures) | {c['cancelled']} |",
        f"| average execution time | {ms(c['avg_execution_ms'])} |",
        "",
        "Failures by kind: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in failures.items()),
        "",
        "## Top agents",
        *(
            f"{a['rank']}. **{a['agent']}** — {a['wins']} wins of {a['calls']} calls, success "
            f"{pct(a['success_rate'])}, p90 {ms(a['latency_p90_ms'])}"
            for a in top
        ),
    ]
    if not top:
        lines.append("No agent calls ended in this window.")
    runs = g["workflows"]["runs"]
    if runs:
        lines += ["", "## Workflows"]
        lines += [
            f"- **{r['workflow']}** — {r['runs']} runs, success {pct(r['success_rate'])}, "
            f"p50 {ms(None if r['p50_s'] is None else r['p50_s'] * 1000)}, "
            f"p95 {ms(None if r['p95_s'] is None else r['p95_s'] * 1000)}"
            for r in runs
        ]
    lines += policy_format.markdown_lines(g["dispatch"])
    return "\n".join([*lines, "", *notes])
