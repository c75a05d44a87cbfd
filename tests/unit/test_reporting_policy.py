"""Dispatch figures from hand-made rows: calls per job, reserves, hedged jobs, policies,
strategies and exploration, and how `stats`, markdown and the dashboard show them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from agent_dispatch.reporting.policy import LATE_MS, DispatchFigures, figures, per_job
from agent_dispatch.reporting.policy_format import markdown_lines, text_lines
from agent_dispatch.reporting.tables import dispatch_section

T0 = pd.Timestamp(dt.datetime(2026, 3, 10, tzinfo=dt.UTC))


def at(ms: float | None) -> pd.Timestamp | None:
    return None if ms is None else T0 + pd.Timedelta(milliseconds=ms)


def rules(category: str, own: dict[str, Any] | None) -> tuple[str, str]:
    # 'text' is hedged, everything else all-at-once; a task's own strategy wins over 'first'.
    return ("hedge" if category == "text" else "all-at-once"), (own or {}).get("type", "first")


def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    jobs = pd.DataFrame(
        [
            ("j1", "text", None),  # hedged: the backup 50 ms after the primary
            ("j2", "text", None),  # the reserve never started
            ("j3", "code", {"type": "quorum", "quorum": 2}),  # together, 49 ms of jitter
            ("j4", "code", None),  # expired: no attempt at all
        ],
        columns=["job_id", "category", "result_strategy"],
    )
    agents = pd.DataFrame(
        [
            ("j1", "d1", "a", at(0), False),
            ("j1", "d1", "b", at(LATE_MS), True),
            ("j2", "d2", "a", at(0), True),
            ("j2", "d2", "b", at(None), False),
            ("j3", "d3", "a", at(1000), False),
            ("j3", "d3", "b", at(1000 + LATE_MS - 1), True),
        ],
        columns=["job_id", "distribution_id", "agent_id", "started_at", "won"],
    )
    agents["started_at"] = pd.to_datetime(agents["started_at"], utc=True)
    picks = pd.DataFrame(
        [("d2", "b"), ("d3", "b"), ("d1", "a")], columns=["distribution_id", "agent_id"]
    )
    return jobs, agents, picks


def test_each_job_gets_its_calls_reserves_and_whether_a_call_started_late() -> None:
    jobs, agents, _ = frames()
    each = per_job(jobs, agents, rules).set_index("job_id")
    assert each["calls_started"].to_dict() == {"j1": 2, "j2": 1, "j3": 2, "j4": 0}
    assert each["reserved_unstarted"].to_dict() == {"j1": 0, "j2": 1, "j3": 0, "j4": 0}
    assert each["hedged"].to_dict() == {"j1": True, "j2": False, "j3": False, "j4": False}
    assert each["policy"].to_dict() == {
        "j1": "hedge",
        "j2": "hedge",
        "j3": "all-at-once",
        "j4": "all-at-once",
    }
    assert each.loc["j3", "strategy"] == "quorum"


def test_figures_per_category_and_overall() -> None:
    rows = {r["category"]: r for r in figures(*frames(), rules).rows}
    assert list(rows) == ["*", "code", "text"]
    overall = rows["*"]
    assert (overall["jobs"], overall["calls_started"], overall["calls_per_job"]) == (4, 5, 1.25)
    assert (overall["reserved_unstarted"], overall["hedged_jobs"]) == (1, 1)
    assert overall["by_policy"] == {"all-at-once": 2, "hedge": 2}
    assert overall["by_strategy"] == {"first": 3, "quorum": 1}
    # Three picks, two called (j1's a lost, j3's b won), one never started (j2's b).
    picked = ("exploration_picks", "exploration_started", "exploration_wins")
    assert tuple(overall[k] for k in picked) == (3, 2, 1)
    assert overall["exploration_win_rate"] == 0.5
    assert tuple(rows["text"][k] for k in picked) == (2, 1, 0)
    assert rows["text"]["exploration_win_rate"] == 0.0
    assert (rows["code"]["calls_per_job"], rows["code"]["hedged_jobs"]) == (1.0, 0)


def test_no_ended_job_gives_zero_figures_and_no_text() -> None:
    jobs, agents, picks = frames()
    empty = figures(jobs.iloc[:0], agents.iloc[:0], picks.iloc[:0], rules).document()
    assert empty["overall"]["jobs"] == 0 and empty["overall"]["calls_per_job"] is None
    assert empty["categories"] == []
    assert text_lines(empty) == [] and markdown_lines(empty) == []
    assert 'id="dispatch"' in dispatch_section(empty)
    assert DispatchFigures().document() == empty


def test_text_markdown_and_dashboard_carry_the_same_rows() -> None:
    doc = figures(*frames(), rules).document()
    text = text_lines(doc)
    assert text[2].splitlines()[2].split()[:6] == ["*", "4", "5", "1.25", "1", "1"]
    md = markdown_lines(doc)
    assert (
        md[1] == "## Dispatch" and len(md) == 5 + 3
    )  # blank, heading, blank, header, rule; 3 rows
    assert "| text | 2 | 3 | 1.50 | 1 | 1 | hedge 2 | first 2 | 2 (1 called) | 0 (0.0%) |" in md
    html = dispatch_section(doc)
    assert all(f'data-key="{k}"' in html for k in ("*", "code", "text"))
