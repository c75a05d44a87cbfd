"""Which policy and strategy a job gets (task, category rule, global) and how it is learned."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from pydantic import ValidationError

from agent_dispatch.clients.wire import QueueTask
from agent_dispatch.domain.hedging import Policy
from agent_dispatch.domain.matching import NEXT_FEW, MatchResult, match_learned
from agent_dispatch.domain.model import (
    AgentProfile,
    JobSpec,
    ResultStrategy,
    StrategyKind,
)
from agent_dispatch.domain.posterior import Evidence, Seen
from agent_dispatch.services.dispatch_rules import rules_for
from tests.conftest import make_settings

NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def task(**fields: Any) -> QueueTask:
    base = {"id": "t-1", "title": "T", "category": "legal", "status": "OPEN", "createdAt": NOW}
    return QueueTask.model_validate({**base, **fields})


def test_the_queue_tasks_result_strategy_reaches_the_job_spec() -> None:
    spec = task(resultStrategy={"type": "quorum", "quorum": 3}).to_job_spec()
    assert spec.result_strategy == ResultStrategy(StrategyKind.QUORUM, 3)
    assert task(resultStrategy={"type": "best-score"}).to_job_spec().result_strategy == (
        ResultStrategy(StrategyKind.BEST_SCORE)
    )
    assert task().to_job_spec().result_strategy is None


@pytest.mark.parametrize(
    "bad", [{"type": "majority"}, {"type": "quorum", "quorum": 1}, {"quorum": 2}]
)
def test_an_invalid_result_strategy_rejects_the_task(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        task(resultStrategy=bad)


def test_a_strategy_survives_the_round_trip_through_the_jobs_table() -> None:
    q = ResultStrategy(StrategyKind.QUORUM, 4)
    assert ResultStrategy.from_dict(q.as_dict()) == q
    assert ResultStrategy.from_dict(None) is None


def test_the_task_beats_the_category_rule_which_beats_the_global_setting() -> None:
    s = make_settings(
        "sqlite://",
        dispatch_policy="single",
        result_strategy="best-score",
        dispatch_rules={"legal": {"policy": "hedge", "hedge_delay_ms": 250, "strategy": "quorum"}},
    )
    legal = JobSpec("t", "T", "legal")
    rules = rules_for(s, legal)
    assert (rules.rule.policy, rules.rule.delay_ms) == (Policy.HEDGE, 250)
    assert rules.strategy == ResultStrategy(StrategyKind.QUORUM, 2)
    assert rules.limit == s.quorum_max_agents
    other = rules_for(s, JobSpec("t", "T", "code"))
    assert (other.rule.policy, other.strategy.kind) == (Policy.SINGLE, StrategyKind.BEST_SCORE)
    own = JobSpec("t", "T", "legal", result_strategy=ResultStrategy(StrategyKind.FIRST))
    assert rules_for(s, own).strategy.kind is StrategyKind.FIRST


def test_a_quorum_never_gets_fewer_agents_than_k() -> None:
    s = make_settings("sqlite://")
    spec = JobSpec(
        "t", "T", "x", max_agents=2, result_strategy=ResultStrategy(StrategyKind.QUORUM, 3)
    )
    assert rules_for(s, spec).limit == 3


def agent(name: str, categories: tuple[str, ...] = ("legal",)) -> AgentProfile:
    return AgentProfile(f"id-{name}", name, f"https://{name}", categories, healthy=True)


def test_learned_matching_records_score_interval_and_exploration_for_chosen_agents() -> None:
    good = Evidence()
    for _ in range(30):
        good = good.observe(Seen.GOOD, 200.0, 0.0, 3600.0)
    agents = [agent("proven"), agent("newbie"), agent("coder", ("code",))]
    result = match_learned(
        JobSpec("t", "T", "legal"),
        agents,
        1,
        {"id-proven": good},
        random.Random(1),
        explore=False,
        failure_cost_ms=30_000,
        now_s=0.0,
        half_life_s=3600.0,
    )
    assert [a.name for a in result.chosen] == ["proven"]
    first, second, excluded = result.decisions
    assert first.chosen and first.low is not None and first.low < first.score < first.high
    assert first.expected_ms is not None and not first.exploration
    assert "to a good answer" in first.reason and "[" in first.reason
    assert not second.chosen and "(only top 1 taken)" in second.reason
    assert not excluded.eligible and "category 'legal'" in excluded.reason
    assert "exploration" in first.as_dict() and "exploration" not in excluded.as_dict()


def test_learned_matching_explaining_the_first_few_keeps_what_the_full_explanation_keeps() -> None:
    rng = random.Random(4)
    agents = [
        agent(f"a{i:02d}")._replace(in_flight=i % 2, max_concurrency=1 + i % 3) for i in range(40)
    ]
    evidence = {a.id: Evidence(rng.randint(0, 9), rng.randint(0, 3)) for a in agents[::3]}

    def ranked(explain: int | None) -> MatchResult:
        return match_learned(
            JobSpec("t", "T", "legal"),
            agents,
            3,
            evidence,
            random.Random(9),
            explore=True,
            failure_cost_ms=30_000,
            now_s=0.0,
            half_life_s=3600.0,
            explain=explain,
        )

    full, few = ranked(None), ranked(3 + NEXT_FEW)
    assert few.bounded() == full.bounded() and few.chosen == full.chosen
    assert (few.busy, few.excluded) == (full.busy, full.excluded)
    assert len(few.decisions) < len(full.decisions)  # the rest were never written
