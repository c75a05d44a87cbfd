"""B2's `2-procs` path: production's planning in two dispatcher processes at once.

One interpreter plans on one core at most (its lock), and at 10,000 agents a decision costs
the dispatcher about a millisecond of CPU, so one process cannot reach 1,000 decisions/s
however well its two plan batches overlap PostgreSQL. Operators scale dispatch out with more
workers (leases keep them apart); this path measures two: each process plans its half of the
cell's leased jobs with `plan_job`, `concurrency` at a time, as the `after` path does in one.
Both warm up (untimed), wait at one gate, then run; the cell's rate is every decision over
the span from the first start to the last end.

Processes are spawned, not forked: the parent holds open connections that a fork would share.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.synchronize import Event
from typing import Any

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.services.intake import Claim

PROCESSES = 2
READY_TIMEOUT = 180.0  # seconds for a child to start, connect and warm up


def _plan_half(
    url: str, warm: list[Claim], claims: list[Claim], seconds: float, concurrency: int,
    ready: Any, go: Event, out: Any,
) -> None:  # fmt: skip
    from benchmarks.matching_scale import Quiet, plan_for, settings

    rt = Runtime(settings(url))
    rt.events = Quiet()

    async def at_the_gate() -> None:
        ready.put(True)
        await asyncio.to_thread(go.wait, READY_TIMEOUT)

    done, took, served = asyncio.run(
        plan_for(rt, warm + claims, seconds, concurrency, "after", warm_up=len(warm),
                 gate=at_the_gate)
    )  # fmt: skip
    ended = time.time()
    out.put((done, served, ended - took, ended))
    rt.engine.dispose()


def plan_in_processes(
    url: str, claims: list[Claim], warm_up: int, seconds: float, concurrency: int
) -> tuple[int, float, int]:
    """(decisions, seconds, dispatchable) over PROCESSES processes planning at once; each
    plans the first `warm_up` claims before the clock starts, the rest are shared out."""
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    warm, timed = claims[:warm_up], claims[warm_up:]
    procs = [
        ctx.Process(
            target=_plan_half,
            args=(
                url,
                warm,  # each warms up on all of them, as a lone process does (plans only read)
                timed[i::PROCESSES],
                seconds,
                concurrency,
                ready,
                go,
                out,
            ),
        )
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=READY_TIMEOUT)
        go.set()
        results = [out.get(timeout=seconds + READY_TIMEOUT) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a planning process failed: exit codes {[p.exitcode for p in procs]}")
    start, end = min(r[2] for r in results), max(r[3] for r in results)
    return sum(r[0] for r in results), end - start, sum(r[1] for r in results)
