"""Backoff policy shared by the clients, and Retry-After parsing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import math
import random
from collections.abc import Awaitable, Callable

# Injected so tests (and callers with their own clock) never wait for real.
Sleep = Callable[[float], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait before retrying a retryable failure.

    `attempts` counts retries: a call is tried at most `attempts + 1` times.
    """

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    jitter: float = 0.1  # +/- this fraction of the computed delay
    max_retry_after: float = 30.0  # a server's Retry-After is honoured up to this

    def __post_init__(self) -> None:
        if self.attempts < 0:
            raise ValueError("attempts must be >= 0")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within 0..1")

    @property
    def tries(self) -> int:
        return self.attempts + 1

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        raw = min(self.max_delay, self.base_delay * 2.0 ** max(attempt - 1, 0))
        # Jitter spreads retries of many clients that failed at the same moment.
        spread = raw * self.jitter
        return max(0.0, raw + random.uniform(-spread, spread))


DEFAULT_RETRY = RetryPolicy()


def parse_retry_after(header: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if header is None:
        return None
    value = header.strip()
    try:
        seconds = float(value)  # the standard says integer seconds; be lenient with "1.5"
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())
