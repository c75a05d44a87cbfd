"""The CLI writes the dashboard; headless Chromium renders it with every chart drawn.

Runs the installed `agent-dispatch` as a user would (subprocesses, DATABASE_URL pointing at the
test database, the session's Prefect server), then reads Chromium's DOM and screenshot.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from sqlalchemy.orm import Session

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.cli.main import main
from agent_dispatch.domain.periods import floor
from agent_dispatch.reporting.charts import PALETTE
from tests.support.dashboard_dom import DashboardDom
from tests.support.png import colour_counts, decode
from tests.support.reporting_history import AGENTS, seed_history

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.flow]

CLI = str(Path(sys.executable).with_name("agent-dispatch"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]  # fmt: skip
CHARTS = ("chart-success-over-time", "chart-latency-distribution", "chart-volume-by-status",
          "chart-slowest-agents", "chart-least-reliable")  # fmt: skip


def cli(args: list[str], database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DATABASE_URL": database_url, "PREFECT_LOGGING_LEVEL": "ERROR", **env}
    return subprocess.run([CLI, *args], env=full, capture_output=True, text=True, timeout=180)


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert Path(CHROMIUM).exists(), "Chromium is needed: apt-get install -y chromium"
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_stats_with_a_bad_since_is_a_one_line_usage_error(database_url: str) -> None:
    done = cli(["stats", "--since", "nonsense"], database_url)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "agent-dispatch stats: error: argument --since: 'nonsense' is neither" in done.stderr


def test_cli_dashboard_renders_in_chromium_and_agrees_with_stats(
    runtime: Runtime,
    database_url: str,
    prefect_harness: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = floor(dt.datetime.now(dt.UTC), "hour") - dt.timedelta(hours=3)
    with Session(runtime.engine) as session:
        seed_history(session, base)
    since = (base - dt.timedelta(hours=1)).isoformat()
    out = tmp_path / "report"
    api = {"PREFECT_API_URL": str(PREFECT_API_URL.value())}

    done = cli(["analytics", "--out", str(out), "--since", since], database_url, **api)
    assert done.returncode == 0, done.stderr
    index = out / "index.html"
    assert index.is_file()
    assert f"dashboard: {index}" in done.stdout
    assert main(["stats", "--json", "--since", since]) == 0  # in-process: same database
    doc = json.loads(capsys.readouterr().out)

    dumped = chromium(["--dump-dom", index.as_uri()], tmp_path / "profile-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = DashboardDom(dumped.stdout)
    assert sorted(dom.charts) == sorted(CHARTS)
    for chart in dom.charts.values():
        drawn = sum(chart.marks.values())
        assert drawn > 0 and drawn == chart.points, (chart.id, chart.marks, chart.points)
    success = dom.charts["chart-success-over-time"]
    assert success.series == sorted(AGENTS)  # alpha, beta, delta, gamma
    assert set(AGENTS) <= set(success.text)  # the legend names every agent
    assert success.mark_series == set(AGENTS)
    assert {"alpha", "beta", "delta"} <= set(dom.charts["chart-latency-distribution"].text)
    assert set(AGENTS) <= set(dom.charts["chart-least-reliable"].text)
    assert dom.external == [] and dom.tags.get("script", 0) == 0

    # The page and `agent-dispatch stats` tell the same story.
    assert dom.kpis["jobs-finished"] == ["Jobs finished", str(doc["jobs"]["finished"])]
    assert doc["jobs"]["finished"] == 10
    assert dom.kpis["calls"][1] == str(doc["calls"]["calls"]) == "22"
    assert dom.kpis["job-success-rate"][1] == f"{doc['jobs']['success_rate']:.1%}" == "60.0%"
    for agent in doc["agents"]:
        cells = dom.leaderboard[agent["agent"]]
        assert cells[:4] == [str(agent["rank"]), agent["agent"], str(agent["calls"]),
                             str(agent["wins"])]  # fmt: skip

    shot = tmp_path / "dashboard.png"
    taken = chromium([f"--screenshot={shot}", "--window-size=1400,2000", index.as_uri()],
                     tmp_path / "profile-shot")  # fmt: skip
    assert taken.returncode == 0, taken.stderr[-2000:]
    pixels = decode(shot)
    assert pixels.shape == (2000, 1400, 3)
    colours = colour_counts(pixels)
    assert len(colours) > 50  # text, lines, bars: far from a blank page
    assert max(colours.values()) < 0.9 * 1400 * 2000
    for c in PALETTE[:4]:  # each agent's series colour is on screen
        assert colours.get(c, 0) > 200, c
