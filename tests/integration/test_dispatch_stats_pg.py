"""Dispatch figures on real PostgreSQL, from rows written through the real repositories:
calls per job, reserves never started, hedged jobs, policies, strategies, exploration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import utcnow
from agent_dispatch.reporting.stats import render_text
from agent_dispatch.services import stats
from tests.conftest import make_settings
from tests.support.dispatch_history import seed_four_jobs

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def rt(database_url: str) -> Iterator[Runtime]:
    # 'text' is hedged by its category rule; 'code' keeps the global all-at-once.
    r = Runtime(make_settings(database_url, dispatch_rules={"text": {"policy": "hedge"}}))
    yield r
    r.dispose()


def test_stats_show_calls_per_job_hedging_policies_strategies_and_exploration(
    rt: Runtime,
) -> None:
    seed_four_jobs(rt)

    doc = stats.stats_document(rt, utcnow() - dt.timedelta(hours=1), utcnow())
    d = doc["dispatch"]
    overall = d["overall"]
    assert (overall["jobs"], overall["calls_started"], overall["calls_per_job"]) == (4, 6, 1.5)
    assert (overall["reserved_unstarted"], overall["hedged_jobs"]) == (1, 1)
    assert overall["by_policy"] == {"all-at-once": 2, "hedge": 2}
    assert overall["by_strategy"] == {"first": 3, "quorum": 1}
    assert (overall["exploration_picks"], overall["exploration_started"]) == (2, 1)
    assert (overall["exploration_wins"], overall["exploration_win_rate"]) == (1, 1.0)
    text, code = ({r["category"]: r for r in d["categories"]}[c] for c in ("text", "code"))
    assert (text["jobs"], text["calls_started"], text["reserved_unstarted"]) == (2, 3, 1)
    assert (text["hedged_jobs"], text["by_policy"]) == (1, {"hedge": 2})
    assert (text["exploration_picks"], text["exploration_win_rate"]) == (1, None)
    assert (code["jobs"], code["calls_started"], code["hedged_jobs"]) == (2, 3, 0)
    assert code["by_strategy"] == {"first": 1, "quorum": 1}

    lines = render_text(doc).splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("dispatch ("))
    rows = {line.split()[0]: line for line in lines[head + 3 : head + 6]}
    assert rows["*"].split()[:6] == ["*", "4", "6", "1.50", "1", "1"]
    assert "all-at-once 2, hedge 2" in rows["*"] and "first 3, quorum 1" in rows["*"]
    assert rows["text"].split()[:6] == ["text", "2", "3", "1.50", "1", "1"]
    assert "2 (1 called)" in rows["*"] and "1 (100.0%)" in rows["*"]
