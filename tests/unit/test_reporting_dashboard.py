"""The dashboard page from hand-made totals: every chart drawn, names escaped, no network."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from agent_dispatch.domain.periods import Window
from agent_dispatch.reporting.aggregate import agent_metrics
from agent_dispatch.reporting.charts import hbar_chart, line_chart
from agent_dispatch.reporting.compute import Overview
from agent_dispatch.reporting.dashboard import granularity, render
from tests.support.dashboard_dom import DashboardDom

H0 = dt.datetime(2026, 3, 10, 0, tzinfo=dt.UTC)
H1 = H0 + dt.timedelta(hours=1)
EVIL = "<b>evil</b>"
CHARTS = ("chart-success-over-time", "chart-latency-distribution", "chart-volume-by-status",
          "chart-slowest-agents", "chart-least-reliable")  # fmt: skip


def overview() -> Overview:
    zero = {"http_errors": 0, "connection_errors": 0, "agent_failures": 0, "invalid_answers": 0,
            "blocked": 0, "category": "*"}  # fmt: skip
    raw = pd.DataFrame([
        {**zero, "agent_name": "alpha", "agent_id": "a", "calls": 4, "completed": 3,
         "timeouts": 1, "cancelled": 0, "wins": 2, "latency_samples": 3,
         "latency_sum_ms": 3000.0, "latency_p50": 900.0, "latency_p90": 1500.0,
         "latency_p99": 1600.0},
        {**zero, "agent_name": EVIL, "agent_id": "e", "calls": 2, "completed": 1,
         "timeouts": 0, "cancelled": 1, "wins": 1, "latency_samples": 1,
         "latency_sum_ms": 400.0, "latency_p50": 400.0, "latency_p90": 400.0,
         "latency_p99": 400.0, "http_errors": 0},
    ])  # fmt: skip
    window = Window(H0, H0 + dt.timedelta(hours=2))
    hist = pd.DataFrame({"agent_name": ["alpha", "alpha", EVIL], "bin": [4, 5, 2],
                         "calls": [2, 1, 1]})  # fmt: skip
    jobs = {"jobs": 3, "completed": 2, "failed": 1, "expired": 0, "cancelled": 0,
            "e2e_mean_ms": 2000.0, "ttfr_p50_ms": 800.0, "ttfr_p90_ms": 900.0}  # fmt: skip
    return Overview(window, agent_metrics(raw, "window", 2.0), jobs, hist)


def timelines() -> tuple[pd.DataFrame, pd.DataFrame]:
    agents = pd.DataFrame({"period_start": [H0, H1, H1], "agent_name": ["alpha", "alpha", EVIL],
                           "success_rate": [1.0, 0.5, 1.0]})  # fmt: skip
    jobs = pd.DataFrame({"period_start": [H0, H1], "completed": [1, 1], "failed": [0, 1],
                         "expired": [0, 0], "cancelled": [0, 0]})  # fmt: skip
    return agents, jobs


def test_every_chart_has_data_and_names_are_escaped() -> None:
    agents, jobs = timelines()
    html = render(overview(), agents, jobs, "hour", H1)
    dom = DashboardDom(html)
    assert sorted(dom.charts) == sorted(CHARTS)
    success = dom.charts["chart-success-over-time"]
    assert success.marks == {"circle": 3} and success.points == 3
    assert success.shapes["path"] == 1  # alpha's line; one point draws no line
    assert success.series == ["<b>evil</b>", "alpha"]
    assert dom.charts["chart-latency-distribution"].marks == {"rect": 3}
    assert dom.charts["chart-volume-by-status"].marks == {"rect": 3}  # 1+1 completed, 1 failed
    # alpha: p50 and p50-p90 segments; evil has p50 == p90, so no second segment
    assert dom.charts["chart-slowest-agents"].marks == {"rect": 3}
    assert dom.charts["chart-least-reliable"].marks == {"rect": 1}  # alpha's timeouts
    assert "<b>" not in html and "&lt;b&gt;evil&lt;/b&gt;" in html
    assert dom.tags.get("script", 0) == 0 and dom.tags.get("link", 0) == 0
    assert dom.external == []
    assert "Job success rate" in html and "66.7%" in html


def test_an_empty_chart_says_so() -> None:
    assert hbar_chart([], str).marks == 0
    svg = line_chart(["00:00"], {"a": [None]}, {"a": "#000"}, str)
    assert svg.marks == 0 and "circle" not in svg.markup


def test_granularity() -> None:
    assert granularity(Window(H0, H0 + dt.timedelta(hours=72))) == "hour"
    assert granularity(Window(H0, H0 + dt.timedelta(hours=73))) == "day"


def test_a_missing_value_breaks_the_line() -> None:
    svg = line_chart(["a", "b", "c", "d"], {"s": [1.0, None, 0.5, 0.25]}, {"s": "#000"}, str)
    assert svg.marks == 3
    path = svg.markup.split(' d="', 1)[1].split('"', 1)[0]
    assert path.count("M") == 1 and path.count("L") == 1  # c-d only; a stands alone
