"""Result strategies: pure deciders over the answers seen so far.

Each decider looks at the finished calls (in arrival order), how many are still running
and how many more agents may still be started, and says one of: decided (a winner), failed
(no result is possible), need more agents (start n now), or wait. The race and the
simulation both drive these; finishing re-runs them over the stored rows, so the job's end
never disagrees with what the race saw.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

from agent_dispatch.domain.model import AgentOutcome, ResultStrategy, StrategyKind

# Agents' `score` is in [0, 1]: an answer at the top cannot be beaten, so best-score stops.
MAX_SCORE = 1.0


FIRST = ResultStrategy()


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    key: str  # agent id or row id: whatever the caller needs back
    outcome: AgentOutcome


@dataclasses.dataclass(frozen=True, slots=True)
class Decided:
    winner: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Failed:
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class NeedMore:
    count: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Wait:
    pass


Verdict = Decided | Failed | NeedMore | Wait
Scorer = Callable[[AgentOutcome], float | None]
Same = Callable[[Any, Any], bool]


def canonical_json(value: Any) -> str:
    """One spelling per JSON value: sorted keys, no whitespace (so key order never matters)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same_json(a: Any, b: Any) -> bool:
    return canonical_json(a) == canonical_json(b)


def reported_score(outcome: AgentOutcome) -> float | None:
    return outcome.score


def _good(answers: Sequence[Answer]) -> list[Answer]:
    return [a for a in answers if a.outcome.succeeded]


def _when_idle(running: int, launchable: int, why: str) -> Verdict:
    """Nothing decisive yet: wait for running calls, else start one more, else give up."""
    if running:
        return Wait()
    if launchable:
        return NeedMore(1, why)
    return Failed(why)


def decide_first(answers: Sequence[Answer], running: int, launchable: int) -> Verdict:
    good = _good(answers)
    if good:
        return Decided(good[0].key, "first good answer")
    return _when_idle(running, launchable, "no agent answered successfully")


def decide_best_score(
    answers: Sequence[Answer], running: int, launchable: int, scorer: Scorer = reported_score
) -> Verdict:
    good = _good(answers)
    scored = [
        (s if (s := scorer(a.outcome)) is not None else -1.0, -i, a) for i, a in enumerate(good)
    ]
    if scored and (running == 0 or max(scored)[0] >= MAX_SCORE):
        best, _, answer = max(scored, key=lambda t: (t[0], t[1]))
        shown = "no score" if best < 0 else f"{best:.3f}"
        return Decided(answer.key, f"best score {shown} of {len(good)} good answers")
    if scored:
        return Wait()
    return _when_idle(running, launchable, "no agent answered successfully")


def _groups(good: Sequence[Answer], same: Same) -> list[list[Answer]]:
    groups: list[list[Answer]] = []
    for answer in good:
        for group in groups:
            if same(group[0].outcome.result, answer.outcome.result):
                group.append(answer)
                break
        else:
            groups.append([answer])
    return groups


def decide_quorum(
    answers: Sequence[Answer], running: int, launchable: int, k: int, same: Same = same_json
) -> Verdict:
    groups = _groups(_good(answers), same)
    largest = max((len(g) for g in groups), default=0)
    for group in groups:
        if len(group) >= k:
            return Decided(group[0].key, f"{len(group)} of {len(answers)} answers agree")
    if largest + running + launchable < k:
        return Failed(
            f"no {k} answers agree ({len(answers)} answers in {len(groups)} groups) and no "
            "more agents may be added"
        )
    # Start just enough agents that, if they all agreed with the largest group, k is reached.
    short = k - largest - running
    if short > 0:
        return NeedMore(min(short, launchable), f"{largest} agree, {k} needed")
    return Wait()


def decide(
    strategy: ResultStrategy,
    answers: Sequence[Answer],
    running: int,
    launchable: int,
    *,
    scorer: Scorer = reported_score,
    same: Same = same_json,
) -> Verdict:
    if strategy.kind is StrategyKind.BEST_SCORE:
        return decide_best_score(answers, running, launchable, scorer)
    if strategy.kind is StrategyKind.QUORUM:
        return decide_quorum(answers, running, launchable, strategy.quorum, same)
    return decide_first(answers, running, launchable)
