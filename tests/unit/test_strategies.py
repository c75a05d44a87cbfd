"""Result strategies as pure deciders: first, best-score, quorum with escalation."""

from __future__ import annotations

from typing import Any

from agent_dispatch.domain.model import AgentOutcome, ResultStrategy, StrategyKind
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind
from agent_dispatch.domain.strategies import (
    Answer,
    Decided,
    Failed,
    NeedMore,
    Wait,
    canonical_json,
    decide,
)

BEST = ResultStrategy(StrategyKind.BEST_SCORE)
QUORUM2 = ResultStrategy(StrategyKind.QUORUM, quorum=2)


def good(key: str, result: Any = "x", score: float | None = None) -> Answer:
    return Answer(key, AgentOutcome(AgentRunStatus.COMPLETED, result=result, score=score))


def bad(key: str) -> Answer:
    return Answer(key, AgentOutcome(AgentRunStatus.FAILED, failure_kind=FailureKind.AGENT_FAILED))


def test_first_takes_the_first_good_answer_even_with_others_running() -> None:
    assert decide(ResultStrategy(), [bad("a"), good("b")], running=2, launchable=1) == Decided(
        "b", "first good answer"
    )


def test_first_after_a_failure_waits_for_running_calls_then_asks_for_one_more() -> None:
    assert decide(ResultStrategy(), [bad("a")], running=1, launchable=1) == Wait()
    assert isinstance(decide(ResultStrategy(), [bad("a")], running=0, launchable=1), NeedMore)
    assert isinstance(decide(ResultStrategy(), [bad("a")], running=0, launchable=0), Failed)


def test_best_score_waits_until_all_answered_then_takes_the_highest_score() -> None:
    answers = [good("a", score=0.6), good("b", score=0.9)]
    assert decide(BEST, answers, running=1, launchable=0) == Wait()
    verdict = decide(BEST, [*answers, good("c", score=0.7)], running=0, launchable=0)
    assert isinstance(verdict, Decided) and verdict.winner == "b"


def test_best_score_stops_early_at_the_maximum_score() -> None:
    verdict = decide(BEST, [good("a", score=1.0)], running=2, launchable=0)
    assert isinstance(verdict, Decided) and verdict.winner == "a"


def test_best_score_with_a_pluggable_scorer_and_unscored_answers_ranked_last() -> None:
    def longest(o: AgentOutcome) -> float:
        return float(len(o.result))

    answers = [good("a", "short", 0.99), good("b", "much longer", 0.1)]
    verdict = decide(BEST, answers, running=0, launchable=0, scorer=longest)
    assert isinstance(verdict, Decided) and verdict.winner == "b"
    verdict = decide(BEST, [good("a"), good("b", score=0.2)], running=0, launchable=0)
    assert isinstance(verdict, Decided) and verdict.winner == "b"


def test_best_score_ties_go_to_the_earliest_answer() -> None:
    verdict = decide(BEST, [good("a", score=0.5), good("b", score=0.5)], running=0, launchable=0)
    assert isinstance(verdict, Decided) and verdict.winner == "a"


def test_quorum_agrees_under_canonical_json_whatever_the_key_order() -> None:
    answers = [good("a", {"x": 1, "y": [1, 2]}), good("b", {"y": [1, 2], "x": 1})]
    verdict = decide(QUORUM2, answers, running=1, launchable=0)
    assert isinstance(verdict, Decided) and verdict.winner == "a"
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_quorum_disagreement_escalates_one_agent_at_a_time_up_to_the_limit() -> None:
    split = [good("a", "yes"), good("b", "no")]
    assert decide(QUORUM2, split, running=0, launchable=3) == NeedMore(1, "1 agree, 2 needed")
    verdict = decide(QUORUM2, [*split, good("c", "no")], running=0, launchable=2)
    assert isinstance(verdict, Decided) and verdict.winner == "b"


def test_quorum_fails_once_no_group_can_still_reach_k() -> None:
    split = [good("a", "yes"), good("b", "no")]
    verdict = decide(QUORUM2, split, running=0, launchable=0)
    assert isinstance(verdict, Failed) and "no 2 answers agree" in verdict.reason


def test_quorum_counts_failures_as_missing_answers_and_waits_for_running_ones() -> None:
    q3 = ResultStrategy(StrategyKind.QUORUM, quorum=3)
    assert decide(q3, [good("a"), bad("b")], running=1, launchable=2) == NeedMore(
        1, "1 agree, 3 needed"
    )
    assert decide(q3, [good("a"), good("b")], running=1, launchable=0) == Wait()


def test_quorum_with_a_pluggable_equality() -> None:
    def same_words(a: Any, b: Any) -> bool:
        return str(a).lower().split() == str(b).lower().split()

    answers = [good("a", "Hello  World"), good("b", "hello world")]
    verdict = decide(QUORUM2, answers, running=0, launchable=0, same=same_words)
    assert isinstance(verdict, Decided)
