"""What we believe about one agent in one category: a decayed Beta posterior and latency.

Evidence is a handful of exponentially decayed sums, so it fits one database row and is
updated in O(1) per finished call. Decay is by wall-clock time with a half-life: an agent
that changes (degrades, is fixed) is re-learned at a known speed, and an agent left unused
drifts back towards its prior, which makes Thompson sampling try it again.
"""

from __future__ import annotations

import enum
import math
import statistics
from typing import NamedTuple

from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind

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


_NORMAL = statistics.NormalDist()


def _truncated_moments(mu: float, sd: float, floor: float) -> tuple[float, float]:
    """E[Y] and E[Y^2] for Y ~ N(mu, sd^2) known to exceed `floor` (a censored log-latency)."""
    if sd <= 1e-9:
        y = max(mu, floor)
        return y, y * y
    a = (floor - mu) / sd
    tail = 1.0 - _NORMAL.cdf(a)
    # The inverse Mills ratio; past 8 sd the tail underflows and lambda ~ a + 1/a.
    lam = _NORMAL.pdf(a) / tail if a < 8.0 else a + 1.0 / a
    mean = mu + sd * lam
    var = sd * sd * max(1.0 + a * lam - lam * lam, 0.0)
    return mean, var + mean * mean


class Evidence(NamedTuple):
    """Decayed sums for one (agent, category); all weights halve every half-life.

    A NamedTuple, not a frozen dataclass: immutable all the same, and built some 30 times
    per plan (a frozen dataclass's __init__ costs several times a tuple's).

    Latency is a lognormal fit over good answers plus censored calls. A call cancelled after
    t ms says only "slower than t": it enters as the expected log-latency given that (one
    EM step against the current fit), so a loser cancelled early changes nothing, while an
    agent that keeps running past its own p95 before being cancelled is seen getting slower.
    """

    successes: float = 0.0
    failures: float = 0.0
    censored: float = 0.0  # cancelled-while-running calls (shown, not used by the Beta)
    lat_n: float = 0.0  # latency samples: good answers and imputed censored calls
    log_sum: float = 0.0  # sum of ln(latency ms)
    log_sq: float = 0.0  # sum of ln(latency ms)^2
    updated_at: float | None = None  # seconds (epoch or simulated clock)

    def weight(self, now: float, half_life_s: float) -> float:
        """What each weight is scaled by when seen from `now`: 2^(-elapsed/half-life); 1.0
        when nothing has elapsed (or nothing decays)."""
        if self.updated_at is None or now <= self.updated_at or half_life_s <= 0:
            return 1.0
        return float(0.5 ** ((now - self.updated_at) / half_life_s))

    def decayed(self, now: float, half_life_s: float) -> Evidence:
        """The same evidence seen from `now`: every weight scaled by `weight`. Ranking reads
        the numbers it needs scaled instead (`beta_params`, `mean_latency_ms`), building no
        Evidence per candidate per plan."""
        w = self.weight(now, half_life_s)
        if w == 1.0:
            return self
        return Evidence(
            self.successes * w,
            self.failures * w,
            self.censored * w,
            self.lat_n * w,
            self.log_sum * w,
            self.log_sq * w,
            now,
        )

    def observe(
        self, seen: Seen, latency_ms: float | None, now: float, half_life_s: float
    ) -> Evidence:
        """Fold one observation in (after decaying to `now`)."""
        ev = self.decayed(now, half_life_s)
        log = math.log(max(latency_ms or 0.0, 1.0))
        if seen is Seen.GOOD:
            return ev._replace(
                successes=ev.successes + 1,
                lat_n=ev.lat_n + 1,
                log_sum=ev.log_sum + log,
                log_sq=ev.log_sq + log * log,
                updated_at=now,
            )
        if seen is Seen.BAD:
            return ev._replace(failures=ev.failures + 1, updated_at=now)
        fit = ev._fit()
        if fit is None:  # nothing to impute against yet: count it, learn no latency
            return ev._replace(censored=ev.censored + 1, updated_at=now)
        y, y2 = _truncated_moments(*fit, log)
        return ev._replace(
            censored=ev.censored + 1,
            lat_n=ev.lat_n + 1,
            log_sum=ev.log_sum + y,
            log_sq=ev.log_sq + y2,
            updated_at=now,
        )

    @property
    def decided(self) -> float:
        return self.successes + self.failures

    def _fit(
        self, min_samples: float = MIN_LATENCY_SAMPLES, weight: float = 1.0
    ) -> tuple[float, float] | None:
        """(mu, sd) of log-latency, or None with fewer than `min_samples` samples; `weight`:
        of the evidence scaled by it (as `decayed` scales it, the same operations)."""
        n = self.lat_n * weight
        if n < min_samples or n <= 0:
            return None
        mu = self.log_sum * weight / n
        return mu, math.sqrt(max(self.log_sq * weight / n - mu * mu, 0.0))

    def mean_latency_ms(self, weight: float = 1.0) -> float | None:
        """Mean time to a good answer (lognormal mean); None before any sample. `weight`:
        of the evidence scaled by it (`weight(now, half_life)`: as `decayed` sees it)."""
        fit = self._fit(1e-9, weight)
        return None if fit is None else math.exp(fit[0] + fit[1] ** 2 / 2)

    def p95_latency_ms(self) -> float | None:
        return self.latency_quantile_ms(0.95)

    def latency_quantile_ms(self, q: float) -> float | None:
        """A quantile of time to a good answer; None until a few samples are in."""
        fit = self._fit()
        return None if fit is None else math.exp(fit[0] + _NORMAL.inv_cdf(q) * fit[1])


class Prior(NamedTuple):
    """Beta pseudo-counts added at read time (never stored, so they can change freely)."""

    alpha: float = 1.0
    beta: float = 1.0

    @classmethod
    def around(cls, mean: float, weight: float = 2.0) -> Prior:
        mean = min(max(mean, 0.01), 0.99)
        return cls(mean * weight, (1 - mean) * weight)


def beta_params(ev: Evidence, prior: Prior, weight: float = 1.0) -> tuple[float, float]:
    """The Beta posterior's shape; `weight`: of the evidence scaled by it (see `decayed`)."""
    return ev.successes * weight + prior.alpha, ev.failures * weight + prior.beta


def posterior_mean(ev: Evidence, prior: Prior) -> float:
    """The success chance the race plan's risk hedge uses (the ranking samples around it)."""
    a, b = beta_params(ev, prior)
    return a / (a + b)
