"""Dispatch figures on SQLite (the plain queries): the same numbers as on PostgreSQL, and
where a late start begins (50 ms after the first call of the attempt)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from agent_dispatch.db.models import utcnow
from agent_dispatch.reporting.policy import LATE_MS
from agent_dispatch.services import stats
from tests.support.dispatch_history import seed_four_jobs
from tests.support.service_deps import TestDeps


@pytest.mark.parametrize(("jitter_ms", "hedged_code_jobs"), [(LATE_MS - 1, 0), (LATE_MS, 1)])
def test_a_call_started_50_ms_after_the_first_makes_the_job_hedged(
    make_deps: Callable[..., TestDeps], jitter_ms: float, hedged_code_jobs: int
) -> None:
    deps = make_deps(dispatch_rules={"text": {"policy": "hedge"}})
    seed_four_jobs(deps, jitter_ms)
    doc = stats.stats_document(deps, utcnow() - dt.timedelta(hours=1), utcnow())["dispatch"]
    code = {r["category"]: r for r in doc["categories"]}["code"]
    assert code["hedged_jobs"] == hedged_code_jobs
    overall = doc["overall"]
    assert (overall["jobs"], overall["calls_started"], overall["reserved_unstarted"]) == (4, 6, 1)
    assert overall["hedged_jobs"] == 1 + hedged_code_jobs
    assert overall["by_policy"] == {"all-at-once": 2, "hedge": 2}
    assert overall["by_strategy"] == {"first": 3, "quorum": 1}
    assert (overall["exploration_picks"], overall["exploration_wins"]) == (2, 1)
