"""The self-contained HTML dashboard: one file, inline CSS and SVG, nothing fetched to view it."""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from pathlib import Path
from string import Template

import pandas as pd

from agent_dispatch.db.reporting_queries import LATENCY_EDGES_MS
from agent_dispatch.domain.periods import PeriodKind, Window, buckets
from agent_dispatch.reporting import charts
from agent_dispatch.reporting.charts import HBar, Segment
from agent_dispatch.reporting.compute import Overview
from agent_dispatch.reporting.format import ms, pct
from agent_dispatch.reporting.stats import glance
from agent_dispatch.reporting.tables import dispatch_section, html_section, leaderboard_table

STATUS_COLORS = {
    "completed": "#59a14f",
    "failed": "#e15759",
    "expired": "#f28e2b",
    "cancelled": "#bab0ac",
}
FAILURE_COLORS = {
    "timeouts": "#f28e2b",
    "http_errors": "#e15759",
    "connection_errors": "#b07aa1",
    "invalid_answers": "#edc948",
    "agent_failures": "#9c755f",
}
TOP_N = 10
TEMPLATE = Path(__file__).with_name("templates") / "dashboard.html"
GREY = "#c9d3df"


def granularity(window: Window) -> PeriodKind:
    """Hour buckets up to three days, day buckets beyond (keeps charts readable)."""
    return "hour" if window.hours <= 72 else "day"


def _bin_labels() -> list[str]:
    def short(v: int) -> str:
        return f"{v // 1000}s" if v >= 1000 else f"{v}ms"

    return [f"<{short(e)}" for e in LATENCY_EDGES_MS] + [f"≥{short(LATENCY_EDGES_MS[-1])}"]


def _legend(colors: dict[str, str]) -> str:
    items = "".join(
        f'<li data-series="{escape(n, True)}"><i style="background:{c}"></i>{escape(n)}</li>'
        for n, c in colors.items()
    )
    return f'<ul class="legend">{items}</ul>'


def _figure(cid: str, title: str, note: str, body: str, marks: int, series: list[str]) -> str:
    empty = "" if marks else '<p class="empty">no data in this window</p>'
    return (
        f'<figure class="chart" id="chart-{cid}" data-chart="{cid}" data-points="{marks}" '
        f'data-series="{escape(json.dumps(series), True)}"><figcaption><h2>{escape(title)}</h2>'
        f"<p>{escape(note)}</p></figcaption>{body}{empty}</figure>"
    )


def _success_over_time(
    timeline: pd.DataFrame, starts: list[dt.datetime], kind: PeriodKind, colors: dict[str, str]
) -> str:
    fmt = "%m-%d %H:00" if kind == "hour" else "%Y-%m-%d"
    labels = [s.strftime(fmt) for s in starts]
    series: dict[str, list[float | None]] = {}
    for name in colors:
        rows = timeline[timeline["agent_name"] == name]
        by_start = {
            pd.Timestamp(s): r
            for s, r in zip(rows["period_start"], rows["success_rate"], strict=True)
        }
        values = [by_start.get(pd.Timestamp(s)) for s in starts]
        series[name] = [None if v is None or pd.isna(v) else float(v) for v in values]
    svg = charts.line_chart(labels, series, colors, lambda v: f"{v:.0%}")
    return _figure(
        "success-over-time",
        "Success rate over time per agent",
        f"completed / (completed + failed) per {kind}; gaps: no decided calls",
        _legend(colors) + svg.markup,
        svg.marks,
        list(colors),
    )


def _latency(overview: Overview, colors: dict[str, str]) -> str:
    labels, parts, marks = _bin_labels(), [], 0
    hist = overview.histogram
    for name, color in colors.items():
        rows = hist[hist["agent_name"] == name]
        counts = [0] * len(labels)
        for b, n in zip(rows["bin"], rows["calls"], strict=True):
            counts[int(b)] = int(n)
        if not any(counts):
            continue
        a = overview.agents[overview.agents["agent_name"] == name].iloc[0]
        svg = charts.histogram(labels, counts, color, name)
        marks += svg.marks
        parts.append(
            f'<div class="hist" data-series="{escape(name, True)}"><h3>{escape(name)}</h3>'
            f"<p>p50 {ms(a['latency_p50_ms'])} · p90 {ms(a['latency_p90_ms'])} · "
            f"p99 {ms(a['latency_p99_ms'])} · answers: {int(a['latency_samples'])}</p>"
            f"{svg.markup}</div>"
        )
    body = f'<div class="hists">{"".join(parts)}</div>'
    return _figure(
        "latency-distribution",
        "Latency distribution per agent",
        "completed calls, counted per latency bin",
        body,
        marks,
        list(colors),
    )


def _volume(timeline: pd.DataFrame, starts: list[dt.datetime], kind: PeriodKind) -> str:
    fmt = "%m-%d %H:00" if kind == "hour" else "%Y-%m-%d"
    by_start = {pd.Timestamp(r["period_start"]): r for _, r in timeline.iterrows()}
    stacks = {
        status: [
            int(by_start[pd.Timestamp(s)][status]) if pd.Timestamp(s) in by_start else 0
            for s in starts
        ]
        for status in STATUS_COLORS
    }
    svg = charts.stacked_columns([s.strftime(fmt) for s in starts], stacks, STATUS_COLORS)
    return _figure(
        "volume-by-status",
        "Job volume by final status",
        f"jobs that ended per {kind}",
        _legend(STATUS_COLORS) + svg.markup,
        svg.marks,
        list(STATUS_COLORS),
    )


def _slowest(overview: Overview, colors: dict[str, str]) -> str:
    a = overview.agents.dropna(subset=["latency_p90_ms"])
    a = a.sort_values(["latency_p90_ms", "agent_name"], ascending=[False, True]).head(TOP_N)
    bars = []
    for name, p50, p90 in zip(
        a["agent_name"], a["latency_p50_ms"], a["latency_p90_ms"], strict=True
    ):
        low, high = float(p50), float(p90)
        segments = (Segment("p50", low, colors[str(name)]), Segment("p50-p90", high - low, GREY))
        bars.append(HBar(str(name), segments, f"p50 {ms(low)} · p90 {ms(high)}"))
    svg = charts.hbar_chart(bars, ms)
    return _figure(
        "slowest-agents",
        "Slowest agents",
        "p90 latency of completed calls (dark: up to p50)",
        svg.markup,
        svg.marks,
        list(a["agent_name"]),
    )


def _least_reliable(overview: Overview) -> str:
    a = overview.agents[(overview.agents["completed"] + overview.agents["failed"]) > 0].copy()
    a["failure_share"] = 1 - a["success_rate"]
    a = a.sort_values(["failure_share", "agent_name"], ascending=[False, True]).head(TOP_N)
    bars = []
    for _, r in a.iterrows():
        decided = int(r["completed"] + r["failed"])
        segs = tuple(Segment(k, r[k] / decided, c) for k, c in FAILURE_COLORS.items() if r[k])
        bars.append(HBar(str(r["agent_name"]), segs, f"{pct(r['failure_share'])} of {decided}"))
    svg = charts.hbar_chart(bars, pct, x_max=1.0)
    return _figure(
        "least-reliable",
        "Least reliable agents",
        "share of decided calls that failed, by kind (cancelled losers excluded)",
        _legend(FAILURE_COLORS) + svg.markup,
        svg.marks,
        list(a["agent_name"]),
    )


def _kpis(g: dict[str, object]) -> str:
    j, c = g["jobs"], g["calls"]
    assert isinstance(j, dict) and isinstance(c, dict)
    cards = [
        ("jobs-finished", "Jobs finished", str(j["finished"])),
        ("job-success-rate", "Job success rate", pct(j["success_rate"])),
        ("job-error-rate", "Job error rate", pct(j["error_rate"])),
        ("ttfr-p50", "Time to first result p50", ms(j["time_to_first_result_p50_ms"])),
        ("e2e-mean", "Avg end-to-end", ms(j["avg_end_to_end_ms"])),
        ("calls", "Agent calls", str(c["calls"])),
        ("call-success-rate", "Call success rate", pct(c["success_rate"])),
        ("avg-execution", "Avg execution time", ms(c["avg_execution_ms"])),
    ]
    return "".join(
        f'<div class="kpi" id="kpi-{k}"><div class="k">{escape(label)}</div>'
        f'<div class="v">{escape(v)}</div></div>'
        for k, label, v in cards
    )


def render(
    overview: Overview,
    agent_timeline: pd.DataFrame,
    job_timeline: pd.DataFrame,
    kind: PeriodKind,
    generated_at: dt.datetime,
) -> str:
    """The page; timelines are '*' rows of the reporting tables for `kind` buckets."""
    names = sorted(set(overview.agents["agent_name"]) | set(agent_timeline.get("agent_name", [])))
    colors = charts.color_of(names)
    starts = buckets(overview.window, kind)
    figures = [
        _success_over_time(agent_timeline, starts, kind, colors),
        _latency(overview, colors),
        _volume(job_timeline, starts, kind),
        _slowest(overview, colors),
        _least_reliable(overview),
    ]
    page = TEMPLATE.read_text(encoding="utf-8")
    doc = glance(overview)
    return Template(page).substitute(
        title="agent-dispatch analytics",
        window=escape(overview.window.label()),
        granularity=kind,
        generated=escape(generated_at.strftime("%Y-%m-%d %H:%M UTC")),
        kpis=_kpis(doc),
        charts="\n".join(figures),
        leaderboard=leaderboard_table(overview),
        workflows=html_section(doc["workflows"]),
        dispatch=dispatch_section(doc["dispatch"]),
    )


def write(out_dir: Path, html: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)  # readers never see half a page
    return path
