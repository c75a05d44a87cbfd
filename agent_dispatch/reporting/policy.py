"""Dispatch figures: agent calls per job, hedge savings, policies, strategies, exploration.

Computed per category and overall ('*') from the counts of db/reporting_policy.py:

* calls per job = agent calls actually started / jobs ended; agents reserved but never started
  are the hedge's savings (a backup the race did not need);
* jobs by dispatch policy and by result strategy. Neither policy nor the rule's strategy is
  stored per job (only in events), so `rules` maps (category, the task's own strategy) to
  the ones in force — as `jobs show` does; a task's own resultStrategy is stored and wins;
* hedged jobs: a call started at least `LATE_MS` after the first call of its attempt (a
  hedge backup, or an escalation of single/quorum); calls started together never are;
* exploration picks (chosen by a Thompson draw above the posterior mean), started, won.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from agent_dispatch.db.reporting_models import ALL_CATEGORIES as ALL
from agent_dispatch.domain.hedging import HedgeRule

# The shortest hedge delay the planner uses for p95-based delays: calls started closer than
# this to the first one were started with it (launch jitter), not after a wait.
LATE_MS = HedgeRule().min_delay_ms

# (category, the task's own resultStrategy or None) -> (policy, strategy kind)
Rules = Callable[[str, dict[str, Any] | None], tuple[str, str]]

SUMS = ("jobs", "calls_started", "reserved_unstarted", "hedged_jobs")
PICKS = ("exploration_picks", "exploration_started", "exploration_wins")


@dataclasses.dataclass(frozen=True)
class DispatchFigures:
    """One dict per category, '*' first; `document()` is what `stats` shows."""

    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def document(self) -> dict[str, Any]:
        overall = next((r for r in self.rows if r["category"] == ALL), _empty(ALL))
        return {"overall": overall, "categories": [r for r in self.rows if r["category"] != ALL]}


def _empty(category: str) -> dict[str, Any]:
    row: dict[str, Any] = {"category": category, **dict.fromkeys(SUMS + PICKS, 0)}
    row.update(calls_per_job=None, exploration_win_rate=None, by_policy={}, by_strategy={})
    return row


def resolved(counts: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """The counts with each group's policy and strategy (one rules call per group)."""
    out = counts.copy()
    pairs = [
        rules(cat, json.loads(own) if isinstance(own, str) else None)  # None may come as NaN
        for cat, own in zip(counts["category"], counts["own_strategy"], strict=True)
    ]
    out["policy"] = [p for p, _ in pairs]
    out["strategy"] = [s for _, s in pairs]
    return out


def _jobs_by(frame: pd.DataFrame, column: str) -> dict[str, int]:
    sums = frame.groupby(column)["jobs"].sum()
    return {str(k): int(v) for k, v in sums.items() if v}


def _figures(category: str, counts: pd.DataFrame, picks: pd.DataFrame) -> dict[str, Any]:
    row = _empty(category)
    row.update({c: int(counts[c].sum()) for c in SUMS})
    n = row["jobs"]
    row.update(
        calls_per_job=row["calls_started"] / n if n else None,
        by_policy=_jobs_by(counts, "policy"),
        by_strategy=_jobs_by(counts, "strategy"),
        exploration_picks=len(picks),
        exploration_started=int(picks["started"].sum()),
        exploration_wins=int(picks["won"].sum()),
    )
    # Won out of the picks that were called: a reserve never started could not win.
    called = row["exploration_started"]
    row["exploration_win_rate"] = row["exploration_wins"] / called if called else None
    return row


def figures(counts: pd.DataFrame, picks: pd.DataFrame, rules: Rules) -> DispatchFigures:
    """Per category (sorted) and overall ('*', first) over the window's ended jobs."""
    if not counts["jobs"].sum():
        return DispatchFigures()
    each = resolved(counts, rules)
    rows = [_figures(ALL, each, picks)]
    for category, group in each.groupby("category", sort=True):
        rows.append(_figures(str(category), group, picks[picks["category"] == category]))
    return DispatchFigures(rows)
