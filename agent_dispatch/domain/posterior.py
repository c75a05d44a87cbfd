"""What we believe about one agent in one category: a decayed Beta posterior and latency.

Evidence is a handful of exponentially decayed sums, so it fits one database row and is
updated in O(1) per finished call. Decay is by wall-clock time with a half-life: an agent
that changes (degrades, is fixed) is re-learned at a known speed, and an agent left unused
drifts back towards its prior, which makes Thompson sampling try it again.
"""

from __future__ import annotations

import dataclasses
import enum
import math

from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind

Z95 = 1.6448536269514722  # one-sided 95% normal quantile (lognormal p95)
MIN_LATENCY_SAMPLES = 3.0  # fewer (decayed) good answers: no p95, callers use a fixed delay


class Seen(enum.StrEnum):
    """What one finished call tells us about the agent."""

    GOOD = "good"  # answered COMPLETED: a success, and a latency sample
    BAD = "bad"  # failed, timed out, or answered invalidly: a failure
    CENSORED = "censored"  # cancelled while running: no verdict, only "slower than t"


def seen_of(outcome: AgentOutcome) -> Seen | None:
    """Classify an outcome; None when the call says nothing (refused before it was made)."""
    if outcome.failure_kind is FailureKind.BLOCKED:
        return None
    if outcome.status is AgentRunStatus.COMPLETED:
        return Seen.GOOD
    if not outcome.judges_agent:
        # A loser cancelled after another agent won is censored, not failed: counting it as a
        # failure would punish slow-but-good agents for the luck of the race.
        return Seen.CENSORED if outcome.latency_ms else None
    return Seen.BAD


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence:
    """Decayed sums for one (agent, category); all weights halve every half-life."""

    successes: float = 0.0
    failures: float = 0.0
    censored: float = 0.0  # cancelled-while-running calls (shown, not used by the Beta)
    good_ms: float = 0.0  # sum of latencies of good answers
    censored_ms: float = 0.0  # sum of running times of censored calls
    log_sum: float = 0.0  # sum of ln(latency) of good answers (lognormal fit for p95)
    log_sq: float = 0.0  # sum of ln(latency)^2 of good answers
    updated_at: float | None = None  # seconds (epoch or simulated clock)

    def decayed(self, now: float, half_life_s: float) -> Evidence:
        """The same evidence seen from `now`: every weight scaled by 2^(-elapsed/half-life)."""
        if self.updated_at is None or now <= self.updated_at or half_life_s <= 0:
            return self
        w = 0.5 ** ((now - self.updated_at) / half_life_s)
        return Evidence(
            self.successes * w,
            self.failures * w,
            self.censored * w,
            self.good_ms * w,
            self.censored_ms * w,
            self.log_sum * w,
            self.log_sq * w,
            now,
        )

    def observe(
        self, seen: Seen, latency_ms: float | None, now: float, half_life_s: float
    ) -> Evidence:
        """Fold one observation in (after decaying to `now`)."""
        ev = self.decayed(now, half_life_s)
        ms = max(latency_ms or 0.0, 1.0)
        if seen is Seen.GOOD:
            log = math.log(ms)
            return dataclasses.replace(
                ev,
                successes=ev.successes + 1,
                good_ms=ev.good_ms + ms,
                log_sum=ev.log_sum + log,
                log_sq=ev.log_sq + log * log,
                updated_at=now,
            )
        if seen is Seen.BAD:
            return dataclasses.replace(ev, failures=ev.failures + 1, updated_at=now)
        return dataclasses.replace(
            ev, censored=ev.censored + 1, censored_ms=ev.censored_ms + ms, updated_at=now
        )

    @property
    def decided(self) -> float:
        return self.successes + self.failures

    def mean_latency_ms(self) -> float | None:
        """Mean time to a good answer, censoring-aware.

        The exponential-model estimate (observed time + censored time) / good answers: a slow
        agent that keeps getting cancelled still accumulates exposure, so it cannot look fast
        by only ever reporting its lucky quick answers.
        """
        if self.successes < 1e-9:
            return None
        return (self.good_ms + self.censored_ms) / self.successes

    def p95_latency_ms(self) -> float | None:
        """The 95th percentile of time to a good answer (lognormal fit, censoring-inflated)."""
        n = self.successes
        if n < MIN_LATENCY_SAMPLES:
            return None
        mu = self.log_sum / n
        sd = math.sqrt(max(self.log_sq / n - mu * mu, 0.0))
        observed_mean = self.good_ms / n
        inflation = (self.good_ms + self.censored_ms) / self.good_ms if observed_mean else 1.0
        return math.exp(mu + Z95 * sd) * inflation


@dataclasses.dataclass(frozen=True, slots=True)
class Prior:
    """Beta pseudo-counts added at read time (never stored, so they can change freely)."""

    alpha: float = 1.0
    beta: float = 1.0

    @classmethod
    def around(cls, mean: float, weight: float = 2.0) -> Prior:
        mean = min(max(mean, 0.01), 0.99)
        return cls(mean * weight, (1 - mean) * weight)


def beta_params(ev: Evidence, prior: Prior) -> tuple[float, float]:
    return ev.successes + prior.alpha, ev.failures + prior.beta
