"""B2: match decisions per second at 3 .. 100,000 agents, and dispatch with 10,000 vs 3.

    .venv/bin/python -m benchmarks.matching_scale [--sizes 3,1000,10000,100000]
        [--seconds 20] [--decisions 300] [--dispatch-jobs 200] [--admin-url URL]

One run, one table. For each fleet size a fresh PostgreSQL database (ad_bench_<random>) is
migrated and filled with a seeded fleet: 100 categories (1-3 per agent), 12 tags (0-4 per
agent), skill 1-5, about 5% inactive, 4% unhealthy, 2% with an open circuit, records of up to
200 runs, and for each agent with a record what ranking learned in each of its categories
(decayed evidence, updated in the past two hours: `evidence_rows`). A job asks for a
category and maybe a tag and a skill level some agent has, so most jobs have eligible agents.
A match decision is one plan of a leased job (lease check,
prefilter, domain rules, learned ranking, the plan's note, commit), `--concurrency` at a time
(default 20: a run plans up to JOB_CONCURRENCY jobs at once), five ways:

- `before`: a transaction per plan, every admitted agent scored (the path before batching);
- `batched`: `plan_job` as production calls it, plans asked for together sharing one
  transaction (services/plan_batching.py), every admitted agent still scored;
- `1-batch`: batched, and at most AGENTS_SCORED_PER_JOB agents scored per job (default
  max(20, 10 x agents wanted)), the rest counted as not scored; one batch in flight at a time;
- `after`: production's path: the same with two batches in flight on PostgreSQL;
- `2-procs`: `after` in two dispatcher processes at once, the jobs split between them, as
  two workers plan (benchmarks/matching_procs.py): one interpreter plans on one core at most.

Each cell runs until `--decisions` plans are done or `--seconds` have passed; each path plans
its own copies of the same jobs.

Dispatch: two databases, one with the 3 loopback agents that serve the jobs' category, one
with those 3 and 9,997 agents that serve other categories; the same jobs through the services
(queue page -> store and lease -> plan -> take -> race -> finish, 20 at once, no Prefect), so
the ratio shows what the size of the fleet costs dispatch.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.dispatching import JobLine, PlainSteps, dispatch_one
from agent_dispatch.services.intake import Claim, store_and_lease
from agent_dispatch.services.job_pool import JobPool
from agent_dispatch.services.plan_batching import Batcher, batcher_for
from agent_dispatch.services.planning import Plan, plan_job, plan_jobs
from agent_dispatch.services.queue_io import fetch_open_page
from agent_dispatch.settings import Settings
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from benchmarks.matching_procs import plan_in_processes

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = "bench-token"
CATEGORIES = [f"cat-{i:03d}" for i in range(100)]
TAGS = [f"tag-{i:02d}" for i in range(12)]
COLUMNS = (
    "id, name, url, protocol, categories, tags, skill_level, max_concurrency, active, healthy, "
    "runs, successes, failures, timeouts, wins, cancelled, reputation, success_rate, "
    "avg_latency_ms, consecutive_failures, circuit_open_until, created_at, updated_at"
)

COPY = f"COPY agents ({COLUMNS}) FROM STDIN"
EVIDENCE_COPY = (
    "COPY agent_category_stats (agent_id, category, successes, failures, censored, lat_n, "
    "log_sum, log_sq, updated_at) FROM STDIN"
)


class Quiet:
    """An event sink that drops announcements (no Prefect server in this benchmark)."""

    def job_changed(self, job_id: str, queue_task_id: str, status: str, **detail: Any) -> None:
        pass

    def agent_changed(
        self,
        job_id: str,
        queue_task_id: str,
        agent_id: str | None,
        agent_name: str,
        status: str,
        **detail: Any,
    ) -> None:
        pass


def agent_row(rng: random.Random, i: int, now: dt.datetime) -> tuple[Any, ...]:
    runs = rng.randint(0, 200)
    successes = int(runs * rng.uniform(0.5, 1.0))
    return (
        str(uuid.uuid4()),
        f"agent-{i:06d}",
        f"http://127.0.0.1:9/agents/{i}",
        rng.choice(["http-json", "http-json", "a2a"]),
        Jsonb(rng.sample(CATEGORIES, rng.randint(1, 3))),
        Jsonb(rng.sample(TAGS, rng.randint(0, 4))),
        rng.randint(1, 5),
        rng.randint(1, 4),
        rng.random() > 0.05,
        None if rng.random() < 0.5 else rng.random() > 0.08,
        runs,
        successes,
        runs - successes,
        0,
        successes // 2,
        0,
        rng.random(),
        successes / runs if runs else None,
        rng.uniform(50, 2000) if runs else None,
        0,
        now + dt.timedelta(hours=1) if rng.random() < 0.02 else None,
        now,
        now,
    )


@contextmanager
def database(admin: str) -> Iterator[str]:
    """A fresh migrated database, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"ad_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        rt = Runtime(settings(url))
        upgrade(rt.engine)
        rt.engine.dispose()
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def settings(url: str, **extra: Any) -> Settings:
    return Settings.model_validate(
        {"database_url": url, "ranking_seed": 1, "agent_allow_private_networks": True, **extra}
    )


def evidence_rows(rows: list[tuple[Any, ...]], now: dt.datetime) -> Iterator[tuple[Any, ...]]:
    """What ranking learned in each category of an agent with a record, as finished calls
    leave it: the record split over its categories, lognormal latencies around its mean
    (log sums), a few cancelled calls, last updated in the past two hours (so every plan
    decays it, as in production)."""
    rng = random.Random(len(rows))
    for row in rows:
        runs, successes, mean_ms = row[10], row[11], row[18]
        if not runs:
            continue
        categories = row[4].obj
        for category in categories:
            good, bad = successes / len(categories), (runs - successes) / len(categories)
            mu, sd = math.log(mean_ms), rng.uniform(0.1, 0.6)
            at = now - dt.timedelta(seconds=rng.uniform(0, 7200))
            yield (row[0], category, good, bad, rng.uniform(0, 0.1) * good, good,
                   good * mu, good * (mu * mu + sd * sd), at)  # fmt: skip


def seed(url: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(COPY) as copy:
            for row in rows:
                copy.write_row(row)
        with conn.cursor().copy(EVIDENCE_COPY) as copy:
            for evidence in evidence_rows(rows, utcnow()):
                copy.write_row(evidence)
    # As a settled table is: statistics, and the GIN indexes' pending entries merged.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE agents, agent_category_stats")


def jobs_for(rng: random.Random, fleet: list[tuple[Any, ...]], n: int) -> list[JobSpec]:
    """Each job asks for what one random agent offers (category, maybe a tag, its skill)."""
    specs = []
    for i in range(n):
        a = rng.choice(fleet)
        tags = list(a[5].obj)
        specs.append(
            JobSpec(
                queue_task_id=f"q-{i}",
                title=f"job {i}",
                category=rng.choice(a[4].obj),
                tags=(rng.choice(tags),) if tags and rng.random() < 0.5 else (),
                skill_level=rng.randint(1, a[6]),
                max_agents=3,
            )
        )
    return specs


def lease(rt: Runtime, specs: list[JobSpec]) -> list[Claim]:
    with rt.uow() as uow:
        spec_of = {uow.jobs.intake(s): s for s in specs}
        leases = uow.jobs.claim_open([s.queue_task_id for s in specs], "bench", 3600, utcnow())
        uow.commit()
    return [Claim(le, le.job_id, spec_of[le.job_id], JobStatus.OPEN) for le in leases]


WARM_UP = 10  # plans per cell before the clock starts
EVERY_AGENT = 1_000_000_000  # AGENTS_SCORED_PER_JOB that scores every admitted agent
PATHS = ("before", "batched", "1-batch", "after", "2-procs")


async def plan_one_batch_at_a_time(rt: Runtime, claim: Claim) -> Plan:
    """Batched as production plans, with one batch in flight at a time (the path before two)."""
    batcher: Batcher[Claim, Plan] = batcher_for(rt, plan_jobs, in_flight=1)
    return await batcher.load(claim)


async def plan_alone(rt: Runtime, claim: Claim) -> Plan:
    """A transaction of its own (the path before batching)."""
    (plan,) = await plan_jobs(rt, [claim])
    if isinstance(plan, Exception):
        raise plan
    return plan


PLANNERS = {"before": plan_alone, "1-batch": plan_one_batch_at_a_time}  # others: plan_job


async def plan_for(
    rt: Runtime,
    claims: list[Claim],
    seconds: float,
    concurrency: int,
    path: str,
    warm_up: int = WARM_UP,
    gate: Callable[[], Awaitable[None]] | None = None,
) -> tuple[int, float, int]:
    """Plans of one path, `concurrency` at a time (as a run plans its jobs), until done or out
    of time: (decisions, seconds, dispatchable). The first `warm_up` claims are planned
    before the clock starts, then `gate` is awaited (processes starting together)."""
    plan = PLANNERS.get(path, plan_job)
    warm, claims = claims[:warm_up], claims[warm_up:]
    for claim in warm:  # connections opened, statements compiled and prepared: not timed
        await plan(rt, claim)
    if gate is not None:
        await gate()
    started, done, served = time.perf_counter(), 0, 0
    todo = iter(claims)

    async def worker() -> None:
        nonlocal done, served
        for claim in todo:
            found = await plan(rt, claim)
            done += 1
            served += any(d.chosen for d in found.decisions)
            if time.perf_counter() - started > seconds:
                return

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - started, served


def eligible_mean(rt: Runtime, specs: list[JobSpec]) -> float:
    with rt.uow() as uow:
        sizes = [len(uow.agents.candidates(s, utcnow())) for s in specs[:50]]
    return sum(sizes) / len(sizes)


def match_cells(
    admin: str, size: int, decisions: int, seconds: float, concurrency: int
) -> list[dict[str, Any]]:
    rng = random.Random(size)
    now = utcnow()
    fleet = [agent_row(rng, i, now) for i in range(size)]
    cells = []
    with database(admin) as url:
        seed(url, fleet)
        specs = jobs_for(rng, fleet, decisions + WARM_UP)
        for name in PATHS:
            cut = name in ("1-batch", "after", "2-procs")
            bound = {} if cut else {"agents_scored_per_job": EVERY_AGENT}
            rt = Runtime(settings(url, **bound))
            rt.events = Quiet()
            # The same jobs each way (copies under other task ids): the same jobs served.
            claims = lease(
                rt,
                [dataclasses.replace(j, queue_task_id=f"{j.queue_task_id}-{name}") for j in specs],
            )
            cell: dict[str, Any] = {
                "agents": size,
                "path": name,
                "eligible": eligible_mean(rt, specs),
            }
            if name == "2-procs":
                done, took, served = plan_in_processes(url, claims, WARM_UP, seconds, concurrency)
            else:
                done, took, served = asyncio.run(plan_for(rt, claims, seconds, concurrency, name))
            cell.update(decisions=done, seconds=took, per_second=done / took, served=served)
            print(f"  {cell}", flush=True)
            cells.append(cell)
            rt.engine.dispose()
    return cells


class _Unwatched:
    """The pool's watcher, with nothing to show (a run's is its progress artifact)."""

    def add(self, n: int) -> None:
        return None

    async def job_done(self, line: JobLine) -> None:
        return None


async def dispatch_all(rt: Runtime, jobs: int) -> tuple[float, int]:
    """Every OPEN task done as a run feeds its pool (flows/dispatch.py: take_from_queue): 20
    at a time, leasing only as many as there is room for and offering the rest of the page
    again as jobs end, each offer one intake (the path where a large fleet once cost most)."""
    started = time.perf_counter()
    pool = JobPool(20, lambda c: dispatch_one(PlainSteps(rt), c, capacity_wait=5), _Unwatched())
    cursor = None
    while True:
        page = await fetch_open_page(rt, cursor, 100)
        backlog = list(page.tasks)
        while backlog:
            room = await pool.room(None)
            intake = await store_and_lease(rt, backlog, room)
            pool.start(intake.claims)
            pending = set(intake.pending)
            backlog = [i for i in backlog if i.spec.queue_task_id in pending]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    await pool.drain()
    took = time.perf_counter() - started
    await rt.aclose_clients()
    return took, pool.outcomes["COMPLETED"]


def dispatch_cell(admin: str, fleet_size: int, jobs: int) -> dict[str, Any]:
    rng = random.Random(7)
    now = utcnow()
    queue = SimulatedQueue(TOKEN)
    farm = AgentFarm({f"instant-{i}": "fast:delay=0" for i in range(3)})
    with database(admin) as url, queue.serve(), farm.serve():
        others = [agent_row(rng, i, now) for i in range(fleet_size - 3)]
        real = []
        for n in farm.names:
            row = list(agent_row(rng, len(others) + len(real), now))
            row[1], row[2], row[3] = n, farm.url_for(n), "http-json"
            row[4], row[5], row[6], row[7] = Jsonb(["bench"]), Jsonb([]), 5, jobs
            row[8], row[9], row[20] = True, True, None
            real.append(tuple(row))
        seed(url, others + real)
        for i in range(jobs):
            queue.add_task(title=f"job {i}", category="bench")
        rt = Runtime(settings(url, remote_queue_url=queue.url, remote_queue_token=TOKEN,
                              max_agents_per_job=3, queue_page_size=100))  # fmt: skip
        rt.events = Quiet()
        took, completed = asyncio.run(dispatch_all(rt, jobs))
        rt.engine.dispose()
    return {"agents": fleet_size, "jobs": jobs, "seconds": took, "completed": completed,
            "per_second": jobs / took}  # fmt: skip


def table(cells: list[dict[str, Any]], dispatch: list[dict[str, Any]]) -> str:
    head = (f"{'agents':>8} {'path':<7} {'eligible/job':>12} {'decisions':>9} "
            f"{'decisions/s':>11} {'ms each':>8} {'vs before':>9}")  # fmt: skip
    lines = [head, "-" * len(head)]
    before: dict[int, float] = {}
    for c in cells:
        ratio = ""
        if c["path"] == "before":
            before[c["agents"]] = c["per_second"]
        elif c["agents"] in before:
            ratio = f"{c['per_second'] / before[c['agents']]:.1f}x"
        lines.append(
            f"{c['agents']:>8,} {c['path']:<7} {c['eligible']:>12.1f} {c['decisions']:>9} "
            f"{c['per_second']:>11.1f} {1000 / c['per_second']:>8.2f} {ratio:>9}"
        )
    if dispatch:
        lines += ["", f"{'dispatch':<16} {'jobs':>6} {'seconds':>8} {'jobs/s':>8} {'vs 3':>6}"]
        base = 0.0
        for d in dispatch:
            base = d["per_second"] if d["agents"] == 3 else base
            lines.append(
                f"{d['agents']:>8,} agents {d['jobs']:>6} {d['seconds']:>8.2f} "
                f"{d['per_second']:>8.1f} {d['per_second'] / base:>5.2f}x"
                + ("" if d["completed"] == d["jobs"] else f"  ({d['completed']} completed)")
            )
        by_size: dict[int, list[float]] = {}
        for d in dispatch:
            by_size.setdefault(d["agents"], []).append(d["seconds"])
        small, large = (sum(v) for v in by_size.values())
        lines.append(f"all rounds: {small / large:.2f}x the jobs/s with 3 agents")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="3,1000,10000,100000")
    p.add_argument("--decisions", type=int, default=2000, help="plans per cell at most")
    p.add_argument("--seconds", type=float, default=20.0, help="time per cell at most")
    p.add_argument("--concurrency", type=int, default=20, help="plans at once (JOB_CONCURRENCY)")
    p.add_argument("--dispatch-jobs", type=int, default=200, help="0: skip the dispatch rows")
    p.add_argument("--dispatch-fleet", type=int, default=10_000)
    p.add_argument("--dispatch-rounds", type=int, default=2)
    p.add_argument("--admin-url", default=ADMIN)
    args = p.parse_args(argv)
    cells: list[dict[str, Any]] = []
    for size in (int(s.replace("_", "")) for s in args.sizes.split(",") if s):
        print(f"{size:,} agents ...", flush=True)
        cells += match_cells(args.admin_url, size, args.decisions, args.seconds, args.concurrency)
    dispatch = []
    # Interleaved rounds (3, N, 3, N, ...): a shared machine's load drifts; both sizes see it.
    for _ in range(args.dispatch_rounds if args.dispatch_jobs else 0):
        for fleet_size in (3, args.dispatch_fleet):
            print(f"dispatch, {fleet_size:,} agents ...", flush=True)
            dispatch.append(dispatch_cell(args.admin_url, fleet_size, args.dispatch_jobs))
    print(f"\nplans {args.concurrency} at a time; eligible/job: mean over 50 jobs")
    print(table(cells, dispatch))
    return cells, dispatch


if __name__ == "__main__":
    main()
