"""How figures read as text (terminal, artifacts, dashboard cells): one spelling each."""

from __future__ import annotations

from typing import Any


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.0f} ms"


def table(rows: list[list[str]], headers: list[str]) -> str:
    """Left-aligned columns under a dashed rule (the CLI's tables)."""
    cells = [headers, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


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
