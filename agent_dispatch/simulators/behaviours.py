"""How a simulated agent answers: one Behaviour per agent, chosen by kind name."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal, get_args

BehaviourKind = Literal[
    "fast",  # COMPLETED after `delay`
    "slow",  # the same with a long delay; /cancel for its distributionId cuts it short
    "failing",  # 200 with status FAILED and `error`
    "error500",  # 500
    "non_json",  # 200 text/plain "oops"
    "wrong_shape",  # 200 JSON `body` that is not an AgentResult
    "hanging",  # never answers until the client leaves or the server stops
    "async_poll",  # 202 + taskId; WORKING `times` polls, then COMPLETED
    "rate_limited",  # 429 + Retry-After the first `times` calls per Idempotency-Key
    "unavailable_then_ok",  # 503 the first `times` calls per Idempotency-Key
    "drip",  # 200, a JSON-looking body one byte per `interval`, never ending
    "huge",  # 200, a streamed JSON body of `size` bytes, no Content-Length
    "flaky",  # answers as `fail_as` with chance `probability` (seeded), else as fast
    "unhealthy",  # health answers 503; execute answers as fast
]
KINDS: tuple[str, ...] = get_args(BehaviourKind)


@dataclasses.dataclass(frozen=True, slots=True)
class Behaviour:
    """Every knob of every kind; kinds ignore the knobs that are not theirs."""

    kind: BehaviourKind = "fast"
    delay: float = 0.0  # seconds before a synchronous answer
    score: float = 0.9
    result: Any = None  # replaces the generated result when not None
    error: str = "simulated agent failure"
    body: Any = dataclasses.field(default_factory=lambda: {"foo": 1})  # wrong_shape's answer
    times: int = 2  # async_poll: WORKING polls; rate_limited/unavailable_then_ok: refusals
    poll_after_ms: int = 50
    retry_after: float | None = 0.1  # seconds; None sends no Retry-After header
    interval: float = 0.05  # drip: seconds between bytes
    size: int = 1 << 30  # huge: body bytes
    chunk_size: int = 1 << 16  # huge: bytes per chunk
    probability: float = 0.5  # flaky: chance of failing
    seed: int = 0  # flaky: RNG seed
    fail_as: BehaviourKind = "error500"  # flaky: how a failure answers
    capacity: int = 4  # health: jobs it takes at once
    cancel_status: int = 200  # answer to both cancel calls; 404/405 mean it cannot cancel


# Per-kind defaults that differ from the dataclass defaults.
_PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"delay": 0.02},
    "slow": {"delay": 30.0},
    "unavailable_then_ok": {"retry_after": None},
}


def behaviour(kind: str, **params: Any) -> Behaviour:
    """A Behaviour of `kind` with its preset defaults, overridden by `params`."""
    if kind not in KINDS:
        raise ValueError(f"unknown behaviour {kind!r}; known: {', '.join(KINDS)}")
    return Behaviour(**{"kind": kind, **_PRESETS.get(kind, {}), **params})


def parse_behaviour(spec: str) -> Behaviour:
    """Parse "kind[:param=value...]", e.g. "slow:delay=5" or "flaky:probability=0.3:seed=7".

    Values are read as JSON when they parse (numbers, null, objects), else as plain strings.
    """
    kind, *pairs = spec.split(":")
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"expected param=value, got {pair!r} in {spec!r}")
        try:
            params[name] = json.loads(raw)
        except ValueError:
            params[name] = raw
    return behaviour(kind, **params)
