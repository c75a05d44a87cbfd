"""Dispatch figures from hand-made grouped counts: calls per job, reserves, hedged jobs,
policies, strategies, exploration, and how `stats`, markdown and the dashboard show them."""

from __future__ import annotations

from typing import Any

import pandas as pd

from agent_dispatch.db.reporting_policy import COUNT_COLUMNS
from agent_dispatch.reporting.policy import DispatchFigures, figures, resolved
from agent_dispatch.reporting.policy_format import markdown_lines, text_lines
from agent_dispatch.reporting.tables import dispatch_section


def rules(category: str, own: dict[str, Any] | None) -> tuple[str, str]:
    # 'text' is hedged, everything else all-at-once; a task's own strategy wins over 'first'.
    return ("hedge" if category == "text" else "all-at-once"), (own or {}).get("type", "first")


QUORUM = '{"quorum": 2, "type": "quorum"}'


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    # (category, own strategy, jobs, calls started, reserved never started, hedged jobs)
    counts = pd.DataFrame(
        [
            ("text", None, 2, 3, 1, 1),
            ("code", QUORUM, 1, 2, 0, 0),
            ("code", None, 1, 0, 0, 0),  # expired: no attempt at all
        ],
        columns=COUNT_COLUMNS,
    )
    # Three picks: two called (one lost, one won), one never started.
    picks = pd.DataFrame(
        [("text", False, False), ("code", True, True), ("text", True, False)],
        columns=["category", "started", "won"],
    )
    return counts, picks


def test_rules_resolve_each_group_with_the_tasks_own_strategy() -> None:
    seen: list[tuple[str, Any]] = []

    def spy(category: str, own: dict[str, Any] | None) -> tuple[str, str]:
        seen.append((category, own))
        return rules(category, own)

    counts, _ = frames()
    out = resolved(counts, spy)
    assert seen == [("text", None), ("code", {"quorum": 2, "type": "quorum"}), ("code", None)]
    assert list(out["policy"]) == ["hedge", "all-at-once", "all-at-once"]
    assert list(out["strategy"]) == ["first", "quorum", "first"]


def test_figures_per_category_and_overall() -> None:
    rows = {r["category"]: r for r in figures(*frames(), rules).rows}
    assert list(rows) == ["*", "code", "text"]
    overall = rows["*"]
    assert (overall["jobs"], overall["calls_started"], overall["calls_per_job"]) == (4, 5, 1.25)
    assert (overall["reserved_unstarted"], overall["hedged_jobs"]) == (1, 1)
    assert overall["by_policy"] == {"all-at-once": 2, "hedge": 2}
    assert overall["by_strategy"] == {"first": 3, "quorum": 1}
    picked = ("exploration_picks", "exploration_started", "exploration_wins")
    assert tuple(overall[k] for k in picked) == (3, 2, 1)
    assert overall["exploration_win_rate"] == 0.5  # of the called picks, not of all three
    assert tuple(rows["text"][k] for k in picked) == (2, 1, 0)
    assert rows["text"]["exploration_win_rate"] == 0.0
    assert (rows["code"]["calls_per_job"], rows["code"]["hedged_jobs"]) == (1.0, 0)
    assert rows["code"]["by_strategy"] == {"first": 1, "quorum": 1}


def test_no_ended_job_gives_zero_figures_and_no_text() -> None:
    counts, picks = frames()
    empty = figures(counts.iloc[:0], picks.iloc[:0], rules).document()
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
