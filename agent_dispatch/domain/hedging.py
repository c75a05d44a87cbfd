"""Dispatch policies and the race plan: when to start which agent, and when it is over.

`all-at-once` starts every chosen agent together (the old behaviour). `single` starts one
and the next only when the strategy needs more (the previous failed, or a quorum is
short). `hedge` (Dean & Barroso, The Tail at Scale) starts the best agent and adds the next
only when no good answer has come after a delay: fixed, or the waited-on agent's own p95
latency, so a hedge fires on roughly the slowest 5% of calls instead of on every job.

`RacePlan` is pure: the live race and the simulation feed it what happened and the clock,
and it answers which agents to start now, when to look again, and the verdict once decided.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence

from agent_dispatch.domain.model import AgentOutcome, ResultStrategy
from agent_dispatch.domain.strategies import (
    Answer,
    Decided,
    Failed,
    NeedMore,
    Same,
    Scorer,
    decide,
    reported_score,
    same_json,
)


class Policy(enum.StrEnum):
    ALL_AT_ONCE = "all-at-once"
    HEDGE = "hedge"
    SINGLE = "single"


@dataclasses.dataclass(frozen=True, slots=True)
class HedgeRule:
    policy: Policy = Policy.ALL_AT_ONCE
    delay_ms: float | None = None  # fixed hedge delay; None: the waited-on agent's p95
    fallback_delay_ms: float = 2000.0  # when the p95 is not known yet
    min_delay_ms: float = 50.0  # a p95 of 3 ms must not turn hedge into all-at-once
    # Hedge on risk as well as on time: start more agents at once while the chance that at
    # least one running call succeeds is below this (None: time-based hedging only).
    min_success: float | None = None

    def delay_for(self, p95_ms: float | None) -> float:
        if self.delay_ms is not None:
            return self.delay_ms
        return max(self.min_delay_ms, p95_ms if p95_ms is not None else self.fallback_delay_ms)


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    start: tuple[str, ...] = ()  # agents to start now, in order
    wake_at_ms: float | None = None  # look again then even if nothing lands
    verdict: Decided | Failed | None = None  # set once: cancel whatever still runs
    why: str = ""  # why `start` was started now (shown in events)


class RacePlan:
    """The state of one race over `order` (best first), at most `limit` agents started."""

    def __init__(
        self,
        order: Sequence[str],
        rule: HedgeRule,
        strategy: ResultStrategy,
        *,
        limit: int | None = None,
        p95_ms: Mapping[str, float | None] | None = None,
        success_p: Mapping[str, float] | None = None,
        scorer: Scorer = reported_score,
        same: Same = same_json,
    ) -> None:
        self.order = tuple(order)
        self.rule = rule
        self.strategy = strategy
        cap = len(self.order) if limit is None else min(limit, len(self.order))
        self.limit = max(cap, 0)
        self.p95 = dict(p95_ms or {})
        self.success_p = dict(success_p or {})
        self.scorer = scorer
        self.same = same
        self.started: list[tuple[str, float]] = []
        self.answers: list[Answer] = []
        self.verdict: Decided | Failed | None = None

    @property
    def running(self) -> int:
        return len(self.started) - len(self.answers)

    @property
    def launchable(self) -> int:
        return self.limit - len(self.started)

    def landed(self, key: str, outcome: AgentOutcome) -> None:
        self.answers.append(Answer(key, outcome))

    def _initial_width(self) -> int:
        if self.rule.policy is Policy.ALL_AT_ONCE:
            return self.limit
        return min(self.strategy.wanted, self.limit)

    def _satisfied(self) -> bool:
        return sum(a.outcome.succeeded for a in self.answers) >= self.strategy.wanted

    def _short_of_target(self) -> int:
        """How many more agents (next in order) lift P(a running call succeeds) to the target."""
        target = self.rule.min_success
        if self.rule.policy is not Policy.HEDGE or target is None or self._satisfied():
            return 0
        answered = {a.key for a in self.answers}
        miss = 1.0
        for key, _ in self.started:
            if key not in answered:
                miss *= 1.0 - self.success_p.get(key, 0.5)
        extra = 0
        for key in self.order[len(self.started) : self.limit]:
            if 1.0 - miss >= target:
                break
            miss *= 1.0 - self.success_p.get(key, 0.5)
            extra += 1
        return extra

    def _hedge_due(self) -> float | None:
        """When the hedge timer of the latest started agent fires, if hedging applies."""
        if self.rule.policy is not Policy.HEDGE or not self.started or not self.launchable:
            return None
        if self._satisfied():
            return None  # a good answer came: the strategy just waits for the running ones
        # From the last start, as long as the quickest agent started so far usually needs: a
        # slow reliable backup started beside a fast primary that then failed must not hold
        # the next hedge back for its own (long) p95.
        at = self.started[-1][1]
        return at + min(self.rule.delay_for(self.p95.get(key)) for key, _ in self.started)

    def step(self, now_ms: float) -> Step:
        """What to do now. Call after every landed answer and at every wake-up."""
        if self.verdict is not None:
            return Step(verdict=self.verdict)
        want, why = 0, ""
        if not self.started:
            want, why = max(self._initial_width(), self._short_of_target()), "first"
        else:
            v = decide(
                self.strategy,
                self.answers,
                self.running,
                self.launchable,
                scorer=self.scorer,
                same=self.same,
            )
            if isinstance(v, Decided | Failed):
                self.verdict = v
                return Step(verdict=v)
            if isinstance(v, NeedMore):
                want, why = v.count, v.reason
            short = self._short_of_target() if self.strategy.wanted == 1 else 0
            if short > want:  # quorum widths come from the strategy itself
                want, why = short, f"P(a running call succeeds) < {self.rule.min_success}"
            due = self._hedge_due()
            if not want and due is not None and due <= now_ms:
                at = self.started[-1][1]
                want, why = 1, f"hedge: no good answer {now_ms - at:.0f} ms after the last start"
        start = self.order[len(self.started) : len(self.started) + min(want, self.launchable)]
        self.started.extend((key, now_ms) for key in start)
        if not self.started:  # nobody to call at all
            self.verdict = Failed("no agent to call")
            return Step(verdict=self.verdict)
        return Step(start, self._hedge_due(), None, why if start else "")
