"""Dispatch figures: agent calls per job, hedge savings, policies, strategies, exploration.

Computed per category and overall ('*') from the rows of db/reporting_policy.py:

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

COUNTS = (
    "jobs",
    "calls_started",
    "reserved_unstarted",
    "hedged_jobs",
    "exploration_picks",
    "exploration_started",
    "exploration_wins",
)


@dataclasses.dataclass(frozen=True)
class DispatchFigures:
    """One dict per category, '*' first; `document()` is what `stats` shows."""

    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def document(self) -> dict[str, Any]:
        overall = next((r for r in self.rows if r["category"] == ALL), _empty(ALL))
        return {"overall": overall, "categories": [r for r in self.rows if r["category"] != ALL]}


def _empty(category: str) -> dict[str, Any]:
    row: dict[str, Any] = {"category": category, **dict.fromkeys(COUNTS, 0)}
    row.update(calls_per_job=None, exploration_win_rate=None, by_policy={}, by_strategy={})
    return row


def per_job(jobs: pd.DataFrame, agents: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """One row per ended job: category, policy, strategy, calls started, unstarted, hedged."""
    out = jobs[["job_id", "category"]].copy()
    resolved = [rules(c, s) for c, s in zip(jobs["category"], jobs["result_strategy"], strict=True)]
    out["policy"] = [p for p, _ in resolved]
    out["strategy"] = [s for _, s in resolved]
    started = agents["started_at"].notna()
    first = agents.groupby("distribution_id")["started_at"].transform("min")
    late = started & ((agents["started_at"] - first).dt.total_seconds() * 1000 >= LATE_MS)
    calls = agents.assign(started=started, unstarted=~started, late=late)
    per = calls.groupby("job_id").agg(
        calls_started=("started", "sum"),
        reserved_unstarted=("unstarted", "sum"),
        hedged=("late", "any"),
    )
    out = out.join(per, on="job_id")
    out[["calls_started", "reserved_unstarted"]] = (
        out[["calls_started", "reserved_unstarted"]].fillna(0).astype(int)
    )
    out["hedged"] = out["hedged"].astype("boolean").fillna(False).astype(bool)
    return out


def _explored(agents: pd.DataFrame, picks: pd.DataFrame) -> pd.DataFrame:
    """The exploratory picks joined to their agent rows: job_id, started, won."""
    rows = picks.merge(agents, on=["distribution_id", "agent_id"], how="inner")
    return pd.DataFrame(
        {"job_id": rows["job_id"], "started": rows["started_at"].notna(), "won": rows["won"]}
    )


def _figures(category: str, jobs: pd.DataFrame, explored: pd.DataFrame) -> dict[str, Any]:
    row = _empty(category)
    n = len(jobs)
    started = int(jobs["calls_started"].sum())
    row.update(
        jobs=n,
        calls_started=started,
        reserved_unstarted=int(jobs["reserved_unstarted"].sum()),
        hedged_jobs=int(jobs["hedged"].sum()),
        calls_per_job=started / n if n else None,
        by_policy={str(k): int(v) for k, v in jobs["policy"].value_counts().sort_index().items()},
        by_strategy={
            str(k): int(v) for k, v in jobs["strategy"].value_counts().sort_index().items()
        },
        exploration_picks=len(explored),
        exploration_started=int(explored["started"].sum()),
        exploration_wins=int(explored["won"].sum()),
    )
    # Won out of the picks that were called: a reserve never started could not win.
    called = row["exploration_started"]
    row["exploration_win_rate"] = row["exploration_wins"] / called if called else None
    return row


def figures(
    jobs: pd.DataFrame, agents: pd.DataFrame, picks: pd.DataFrame, rules: Rules
) -> DispatchFigures:
    """Per category (sorted) and overall ('*', first) over the window's ended jobs."""
    if jobs.empty:
        return DispatchFigures()
    each = per_job(jobs, agents, rules)
    explored = _explored(agents, picks).merge(each[["job_id", "category"]], on="job_id")
    rows = [_figures(ALL, each, explored)]
    for category, group in each.groupby("category", sort=True):
        rows.append(_figures(str(category), group, explored[explored["category"] == category]))
    return DispatchFigures(rows)
