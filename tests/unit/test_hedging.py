"""The race plan: all-at-once, single and hedge; strategies deciding; escalation limits."""

from __future__ import annotations

from agent_dispatch.domain.hedging import HedgeRule, Policy, RacePlan
from agent_dispatch.domain.model import AgentOutcome, ResultStrategy, StrategyKind
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind
from agent_dispatch.domain.strategies import Decided, Failed

OK = AgentOutcome(AgentRunStatus.COMPLETED, result="r")
FAIL = AgentOutcome(AgentRunStatus.FAILED, failure_kind=FailureKind.AGENT_FAILED)
FIRST = ResultStrategy()
HEDGE_FIXED = HedgeRule(Policy.HEDGE, delay_ms=500.0)


def test_all_at_once_starts_everyone_and_the_first_good_answer_decides() -> None:
    plan = RacePlan(["a", "b", "c"], HedgeRule(Policy.ALL_AT_ONCE), FIRST)
    assert plan.step(0.0).start == ("a", "b", "c")
    plan.landed("b", OK)
    assert plan.step(40.0).verdict == Decided("b", "first good answer")


def test_hedge_starts_the_best_alone_and_needs_nobody_else_when_it_is_fast() -> None:
    plan = RacePlan(["a", "b", "c"], HEDGE_FIXED, FIRST)
    first = plan.step(0.0)
    assert first.start == ("a",) and first.wake_at_ms == 500.0
    plan.landed("a", OK)
    assert isinstance(plan.step(120.0).verdict, Decided)
    assert [k for k, _ in plan.started] == ["a"]


def test_hedge_adds_the_next_agent_after_the_delay_when_the_first_is_slow() -> None:
    plan = RacePlan(["a", "b", "c"], HEDGE_FIXED, FIRST)
    plan.step(0.0)
    assert plan.step(499.0).start == ()
    step = plan.step(500.0)
    assert step.start == ("b",) and step.wake_at_ms == 1000.0
    assert step.why == "hedge: no good answer 500 ms after the last start"
    plan.landed("b", OK)
    assert plan.step(700.0).verdict == Decided("b", "first good answer")


def test_hedge_delay_defaults_to_the_waited_on_agents_p95_with_a_floor_and_a_fallback() -> None:
    rule = HedgeRule(Policy.HEDGE, fallback_delay_ms=2000.0, min_delay_ms=50.0)
    plan = RacePlan(["a", "b", "c"], rule, FIRST, p95_ms={"a": 300.0, "b": 5.0})
    assert plan.step(0.0).wake_at_ms == 300.0
    assert plan.step(300.0).start == ("b",)
    assert plan.step(300.0).wake_at_ms == 350.0  # b's p95 of 5 ms is floored at 50
    assert plan.step(350.0).start == ("c",)
    assert rule.delay_for(None) == 2000.0


def test_a_failure_starts_the_next_agent_at_once_in_hedge_and_single() -> None:
    for rule in (HEDGE_FIXED, HedgeRule(Policy.SINGLE)):
        plan = RacePlan(["a", "b"], rule, FIRST)
        plan.step(0.0)
        plan.landed("a", FAIL)
        assert plan.step(10.0).start == ("b",)


def test_single_never_hedges_on_time() -> None:
    plan = RacePlan(["a", "b"], HedgeRule(Policy.SINGLE), FIRST)
    assert plan.step(0.0).wake_at_ms is None
    assert plan.step(60_000.0).start == ()


def test_when_every_agent_failed_the_race_fails() -> None:
    plan = RacePlan(["a"], HEDGE_FIXED, FIRST)
    plan.step(0.0)
    plan.landed("a", FAIL)
    assert isinstance(plan.step(1.0).verdict, Failed)
    assert isinstance(RacePlan([], HEDGE_FIXED, FIRST).step(0.0).verdict, Failed)


def test_quorum_starts_k_agents_and_escalates_on_disagreement_up_to_the_limit() -> None:
    q2 = ResultStrategy(StrategyKind.QUORUM, quorum=2)
    plan = RacePlan(["a", "b", "c", "d"], HedgeRule(Policy.SINGLE), q2, limit=3)
    assert plan.step(0.0).start == ("a", "b")
    plan.landed("a", AgentOutcome(AgentRunStatus.COMPLETED, result={"v": 1}))
    plan.landed("b", AgentOutcome(AgentRunStatus.COMPLETED, result={"v": 2}))
    assert plan.step(10.0).start == ("c",)
    plan.landed("c", AgentOutcome(AgentRunStatus.COMPLETED, result={"v": 3}))
    verdict = plan.step(20.0).verdict
    assert isinstance(verdict, Failed)  # the limit of 3 is reached: "d" is never called
    assert [k for k, _ in plan.started] == ["a", "b", "c"]


def test_hedge_stops_adding_once_enough_good_answers_came_for_best_score() -> None:
    best = ResultStrategy(StrategyKind.BEST_SCORE)
    plan = RacePlan(["a", "b", "c"], HEDGE_FIXED, best)
    plan.step(0.0)
    plan.step(500.0)  # a is slow: b is hedged in
    plan.landed("b", AgentOutcome(AgentRunStatus.COMPLETED, result="b", score=0.4))
    step = plan.step(600.0)
    assert step.start == () and step.wake_at_ms is None and step.verdict is None
    plan.landed("a", AgentOutcome(AgentRunStatus.COMPLETED, result="a", score=0.8))
    assert plan.step(900.0).verdict == Decided("a", "best score 0.800 of 2 good answers")


def test_risk_hedging_starts_more_agents_at_once_while_success_is_unlikely() -> None:
    rule = HedgeRule(Policy.HEDGE, delay_ms=500.0, min_success=0.9)
    chance = {"shaky": 0.7, "solid": 0.95, "spare": 0.9}
    plan = RacePlan(["shaky", "solid", "spare"], rule, FIRST, success_p=chance)
    assert plan.step(0.0).start == ("shaky", "solid")  # 1 - 0.3 * 0.05 >= 0.9
    plan.landed("solid", FAIL)
    step = plan.step(10.0)  # only "shaky" runs now: 0.7 < 0.9
    assert step.start == ("spare",) and "P(a running call succeeds)" in step.why


def test_a_slow_backup_beside_a_fast_primary_does_not_hold_the_next_hedge_back() -> None:
    # fast (p95 300 ms) and slow (p95 4 s) start together on risk; fast fails at once. The
    # next hedge is due 300 ms after the last start (the quickest started agent's delay), not
    # after the slow backup's own 4 s.
    rule = HedgeRule(Policy.HEDGE, min_success=0.9)
    plan = RacePlan(
        ["fast", "slow", "spare"],
        rule,
        FIRST,
        p95_ms={"fast": 300.0, "slow": 4000.0, "spare": 600.0},
        success_p={"fast": 0.8, "slow": 0.97, "spare": 0.6},
    )
    assert plan.step(0.0).start == ("fast", "slow")
    plan.landed("fast", FAIL)
    step = plan.step(100.0)
    assert step.start == () and step.wake_at_ms == 300.0  # slow alone is likely enough
    step = plan.step(300.0)
    assert step.start == ("spare",) and step.why.startswith("hedge: no good answer 300 ms")


def test_a_risk_target_of_zero_hedges_on_time_only() -> None:
    rule = HedgeRule(Policy.HEDGE, delay_ms=500.0, min_success=0.0)
    plan = RacePlan(["shaky", "solid"], rule, FIRST, success_p={"shaky": 0.1, "solid": 0.9})
    assert plan.step(0.0).start == ("shaky",)
    assert plan.step(500.0).start == ("solid",)
