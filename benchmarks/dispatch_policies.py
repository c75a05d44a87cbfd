"""Dispatch policies on simulated agents: ranking x (all-at-once | hedge | single).

A discrete-event simulation that drives the real domain functions (ranking, Thompson
sampling, the hedge race plan, result strategies) with no database and no HTTP. Agents have
hidden true success rates per category and lognormal latencies; halfway through, the best
text agent degrades, and at three quarters an excellent new agent joins.

    python -m benchmarks.dispatch_policies [--jobs 6000] [--seed 1] [--seeds 10]

It prints the table for one seed, then the issue's four targets for the new ranking's hedge
rows over `--seeds` seeds (benchmarks/dispatch_targets.py).

Jobs run one after another (one every GAP_S simulated seconds) and learning is applied when
each job ends; agents have no concurrency limit. Those simplifications keep every policy on
exactly the same job and answer stream (the same seed), so the columns compare choices only.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import random
import statistics
import sys

from agent_dispatch.domain.hedging import HedgeRule, Policy, RacePlan
from agent_dispatch.domain.model import AgentOutcome, ResultStrategy
from agent_dispatch.domain.posterior import seen_of
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind
from agent_dispatch.domain.strategies import Decided
from benchmarks.dispatch_sim import (
    GAP_S,
    HALF_LIFE_S,
    LIMIT,
    TIMEOUT_MS,
    World,
    make_rankers,
    make_world,
)
from benchmarks.dispatch_targets import targets_summary
from benchmarks.dispatch_watch import DriftWatch

HEDGE_QUANTILE = 0.95  # the hedge waits for the primary's own p95 (Dean & Barroso)
RISK_TARGET = 0.94  # hedge+risk: start more at once while P(a running call succeeds) < 0.94
# (policy, risk target): the rows of each ranking.
POLICIES: tuple[tuple[Policy, float | None], ...] = (
    (Policy.ALL_AT_ONCE, None),
    (Policy.HEDGE, None),
    (Policy.HEDGE, RISK_TARGET),
    (Policy.SINGLE, None),
)


@dataclasses.dataclass
class Row:
    ranking: str
    policy: str
    watch: DriftWatch
    successes: int = 0
    jobs: int = 0
    calls: int = 0
    times_ms: list[float] = dataclasses.field(default_factory=list)
    regret_p: float = 0.0  # sum over jobs of (best true rate - true rate of the first pick)
    regret_s: float = 0.0  # the same in true expected seconds to a good answer


def _run_job(
    world: World, plan: RacePlan, seed: int, job: int, category: str
) -> tuple[float, Decided | None, list[tuple[str, AgentOutcome]]]:
    """Play one race: answers land at their latency, the plan starts and stops agents."""
    events: list[tuple[float, int, str, AgentOutcome]] = []
    started_at: dict[str, float] = {}
    seq = 0
    now = 0.0
    ended: list[tuple[str, AgentOutcome]] = []
    while True:
        step = plan.step(now)
        for key in step.start:
            started_at[key] = now
            ms, outcome = world.answer(key, category, job, seed)
            heapq.heappush(events, (now + ms, seq, key, outcome))
            seq += 1
        if step.verdict is not None:
            break
        next_event = events[0][0] if events else None
        wake = step.wake_at_ms
        if next_event is None and wake is None:
            break  # cannot happen with a well-formed plan; guards an endless loop
        if next_event is not None and (wake is None or next_event <= wake):
            now, _, key, outcome = heapq.heappop(events)
            plan.landed(key, dataclasses.replace(outcome, latency_ms=now - started_at[key]))
            ended.append((key, plan.answers[-1].outcome))
        else:
            assert wake is not None
            now = wake
    # Whatever still runs is cancelled now: a censored observation of its latency.
    for _, _, key, _ in events:
        cancelled = AgentOutcome(
            AgentRunStatus.CANCELLED,
            failure_kind=FailureKind.CANCELLED,
            latency_ms=now - started_at[key],
        )
        ended.append((key, cancelled))
    verdict = step.verdict if isinstance(step.verdict, Decided) else None
    return now, verdict, ended


def simulate(
    ranking: str,
    policy: Policy,
    jobs: int,
    seed: int,
    quantile: float = HEDGE_QUANTILE,
    min_success: float | None = None,
) -> Row:
    world = make_world(jobs)
    rank = make_rankers(world, random.Random(seed * 7919 + 1))[ranking]
    rule = HedgeRule(policy, fallback_delay_ms=2000.0, min_success=min_success)
    risk = min_success is not None and policy is Policy.HEDGE
    row = Row(ranking, policy.value + ("+risk" if risk else ""), watch=DriftWatch(world))
    for job in range(jobs):
        # Seeded per job, never by policy: every row sees the same categories and answers.
        category = world.category(random.Random(seed * 1_000_003 + job))
        now_s = job * GAP_S
        eligible = world.eligible(category, job)
        ranked = rank.order(eligible, category, now_s)
        order = ranked[:LIMIT]
        basis = {key: rank.hedge_basis(key, category, now_s, quantile) for key in order}
        chance = {key: rank.success(key, category, now_s) for key in order}
        plan = RacePlan(order, rule, ResultStrategy(), limit=LIMIT, p95_ms=basis, success_p=chance)
        elapsed, verdict, ended = _run_job(world, plan, seed, job, category)
        winner = verdict.winner if verdict else None
        for key, outcome in ended:
            seen = seen_of(outcome)  # as finishing classifies each call
            rank.observe(key, category, outcome, won=key == winner, now_s=now_s, seen=seen)
        row.jobs += 1
        row.successes += verdict is not None
        row.calls += len(plan.started)
        row.times_ms.append(elapsed)
        first = order[0]
        row.regret_p += world.best_rate(category, job, eligible) - world.rate(first, category, job)
        row.regret_s += (
            world.expected_ms(first, category, job)
            - world.best_expected_ms(category, job, eligible)
        ) / 1000
        greedy = rank.greedy(eligible, category, now_s) if category == "text" else ranked
        row.watch.saw(job, category, ranked, greedy, [k for k, _ in plan.started])
    return row


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def table(rows: list[Row], base: Row) -> str:
    head = (
        f"{'ranking':<8} {'policy':<12} {'success':>8} {'mean s':>7} {'p99 s':>7} "
        f"{'calls/job':>9} {'calls x':>7} {'p99 x':>6} {'regret p':>8} {'regret s':>8} "
        f"{'place':>5} {'noticed':>9} {'deg calls':>9} {'new 1st':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.ranking:<8} {r.policy:<12} {r.successes / r.jobs:>8.2%} "
            f"{statistics.fmean(r.times_ms) / 1000:>7.2f} {p99(r.times_ms) / 1000:>7.2f} "
            f"{r.calls / r.jobs:>9.2f} {r.calls / base.calls:>7.2f} "
            f"{p99(r.times_ms) / p99(base.times_ms):>6.2f} {r.regret_p:>8.1f} {r.regret_s:>8.0f} "
            f"{r.watch.place:>5} {r.watch.label():>9} {r.watch.calls_after:>9} "
            f"{r.watch.late_first / max(r.watch.late_jobs, 1):>7.0%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hedge-quantile", type=float, default=HEDGE_QUANTILE)
    parser.add_argument("--seeds", type=int, default=10, help="seeds in the targets summary")
    args = parser.parse_args(argv)
    world = make_world(args.jobs)
    rows = [
        simulate(ranking, policy, args.jobs, args.seed, args.hedge_quantile, risk)
        for ranking in ("naive", "today", "new")
        for policy, risk in POLICIES
    ]
    base = next(r for r in rows if (r.ranking, r.policy) == ("today", "all-at-once"))
    print(
        f"{args.jobs} jobs, seed {args.seed}, up to {LIMIT} agents per job, timeout "
        f"{TIMEOUT_MS / 1000:.0f} s, half-life {HALF_LIFE_S:.0f} s, one job every {GAP_S} s; "
        f"{world.degraded_agent} degrades at job {world.degrade_at}, "
        f"{world.late_agent} joins at job {world.join_at}"
    )
    print(
        "x columns: ratio to today's ranking with all-at-once (the current behaviour); "
        f"hedge waits for the primary's p{HEDGE_QUANTILE * 100:.0f}, hedge+risk also starts "
        f"agents at once until P(one succeeds) >= {RISK_TARGET}\n"
    )
    print(table(rows, base))
    seeds = range(args.seed, args.seed + args.seeds)
    print()
    print(targets_summary(args.jobs, seeds, args.hedge_quantile, RISK_TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
