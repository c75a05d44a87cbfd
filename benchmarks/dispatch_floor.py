"""B1: agent-dispatch against the two floors under it, side by side in one run.

    .venv/bin/python -m benchmarks.dispatch_floor [--jobs 200] [--concurrency 20]
        [--rounds 3] [--serial-jobs 50] [--database postgresql://...] [--profile MODE]
        [--modes ...]

One table: for raw asyncio + httpx, Prefect's floor (one async task run per agent call,
nothing else), that floor plus agent-dispatch's Prefect events (`events`), and agent-dispatch
in DISPATCH_MODE=traced, steps and lean: the span of `--jobs` jobs x 3 agents (answering in
50/100/200 ms on loopback) at `--concurrency` jobs at once (the median of `--rounds` batches,
each round starting one mode later); the time per job one at a time (`--serial-jobs`); and
first agent answer -> queue told COMPLETED, p50, one at a time; each with its ratio to both
floors. A second table splits the concurrent batches' CPU per job by process: this one, the
Prefect server (its work behind a batch waited for and charged to that batch), PostgreSQL,
the simulators. The queue and agents run in a child process (benchmarks/floor_sims.py);
agent-dispatch uses PostgreSQL (a scratch database on 127.0.0.1:5432 unless --database) and a
Prefect server (PREFECT_API_URL, else a temporary one).
`--profile MODE` writes a pyinstrument profile of that mode's first concurrent batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import time
import uuid
from collections.abc import Iterator

import psycopg

from agent_dispatch.bootstrap import Runtime, set_runtime
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent
from agent_dispatch.settings import Settings
from benchmarks import cpu_split
from benchmarks.floor_paths import run_floor
from benchmarks.floor_sims import DELAYS_S, TOKEN, Sims, running_sims

MODES = ("raw", "prefect", "events", "traced", "steps", "lean")
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclasses.dataclass
class Measured:
    spans_s: list[float] = dataclasses.field(default_factory=list)  # one per round
    per_job_ms: float = 0.0
    told_p50_ms: float = 0.0
    completed: int = 0  # jobs COMPLETED over every batch
    jobs: int = 0
    cpus_ms: list[dict[str, float]] = dataclasses.field(default_factory=list)  # per job, by role
    behind_s: list[float] = dataclasses.field(default_factory=list)  # server busy after a span

    @property
    def span_s(self) -> float:
        return statistics.median(self.spans_s)

    @property
    def cpu_ms(self) -> dict[str, float]:
        return {role: statistics.median(c[role] for c in self.cpus_ms) for role in cpu_split.ROLES}

    @property
    def server_behind_s(self) -> float:
        return statistics.median(self.behind_s)


@contextlib.contextmanager
def scratch_database(given: str | None) -> Iterator[str]:
    """The database to use: `given`, or a fresh one dropped afterwards."""
    if given:
        yield given
        return
    name = f"bench_floor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Product:
    """agent-dispatch's dispatch flow over the sims, in one DISPATCH_MODE."""

    def __init__(self, database_url: str, sims: Sims) -> None:
        self.database_url, self.sims = database_url, sims
        rt = Runtime(self.settings("traced", 1))
        upgrade(rt.engine)
        with rt.uow() as uow:
            for name, url in sims.agent_urls.items():
                uow.agents.add(
                    Agent(name=name, url=url, categories=["general"], max_concurrency=1000)
                )
            uow.commit()
        rt.dispose()

    def settings(self, mode: str, concurrency: int) -> Settings:
        return Settings.model_validate(
            {
                "database_url": self.database_url,
                "remote_queue_url": self.sims.queue_url,
                "remote_queue_token": TOKEN,
                "agent_allow_private_networks": True,
                "max_agents_per_job": len(self.sims.agent_urls),
                "queue_page_size": 100,
                "job_concurrency": concurrency,
                "dispatch_mode": mode,
                "worker_name": "bench",
            }
        )

    def run(self, mode: str, jobs: int, concurrency: int) -> int:
        from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow

        rt = Runtime(self.settings(mode, concurrency))
        set_runtime(rt)
        try:
            summary = asyncio.run(dispatch_flow(DispatchParams(max_jobs=jobs)))  # type: ignore[arg-type]
        finally:
            set_runtime(None)
            rt.dispose()
        return summary.count("COMPLETED")


def batch(
    mode: str, sims: Sims, product: Product, jobs: int, concurrency: int
) -> tuple[float, int, list[str]]:
    """Seed `jobs` tasks and get them done through `mode`: seconds, completed, task ids."""
    ids = sims.add(jobs)
    started = time.perf_counter()
    if mode in ("raw", "prefect", "events"):
        done = run_floor(mode, sims.queue_url, sims.agent_urls, jobs, concurrency)
    else:
        done = product.run(mode, jobs, concurrency)
    return time.perf_counter() - started, done, ids


def told_after_first_answer(sims: Sims, ids: list[str]) -> list[float]:
    """Per job, ms from the first agent's answer (its arrival + its delay, at the agent) to
    the queue receiving COMPLETED."""
    state = sims.dump()
    wanted = set(ids)
    first: dict[str, float] = {}
    for agent, path, job_id, at in state["calls"]:
        if path == "/execute" and job_id in wanted:
            answer = at + DELAYS_S[agent]
            first[job_id] = min(first.get(job_id, answer), answer)
    told = {t: at for t, status, at in state["patches"] if t in wanted and status == "COMPLETED"}
    return [(told[t] - first[t]) * 1000 for t in ids if t in told and t in first]


def measure(args: argparse.Namespace, sims: Sims, product: Product) -> dict[str, Measured]:
    results = {m: Measured() for m in args.modes}
    for mode in args.modes:  # warm-up: imports, Prefect's flow and task registration
        batch(mode, sims, product, args.warmup, args.warmup)
    cpu_split.settle(limit_s=args.server_wait)
    for round_no in range(args.rounds):
        # Each round starts one mode later: no mode always runs first, or last.
        order = args.modes[round_no % len(args.modes) :] + args.modes[: round_no % len(args.modes)]
        for mode in order:
            r = results[mode]
            before = cpu_split.snapshot()
            if args.profile == mode and round_no == 0:
                from pyinstrument import Profiler

                with Profiler(async_mode="disabled") as profiler:
                    span, done, _ = batch(mode, sims, product, args.jobs, args.concurrency)
                profiler.write_html(f"profile-{mode}.html")
                print(profiler.output_text(unicode=False, color=False, show_all=False))
            else:
                span, done, _ = batch(mode, sims, product, args.jobs, args.concurrency)
            # The server's work behind a batch is that batch's mode's.
            r.behind_s.append(cpu_split.settle(limit_s=args.server_wait))
            r.cpus_ms.append(cpu_split.per_job_ms(before, cpu_split.snapshot(), args.jobs))
            r.spans_s.append(span)
            r.completed, r.jobs = r.completed + done, r.jobs + args.jobs
    for mode in args.modes:
        r = results[mode]
        span, done, ids = batch(mode, sims, product, args.serial_jobs, 1)
        cpu_split.settle(limit_s=args.server_wait)
        r.per_job_ms = span / args.serial_jobs * 1000
        r.told_p50_ms = statistics.median(told_after_first_answer(sims, ids) or [float("nan")])
        r.completed, r.jobs = r.completed + done, r.jobs + args.serial_jobs
    return results


def table(args: argparse.Namespace, results: dict[str, Measured]) -> str:
    raw, pf = results.get("raw"), results.get("prefect")

    def ratio(value: float, floor: float | None) -> str:
        return f"{value / floor:.2f}x" if floor else "-"

    lines = [
        f"dispatch floor: {args.jobs} jobs x 3 agents (50/100/200 ms) at {args.concurrency} at "
        f"once (median of {args.rounds} rounds, each starting one mode later); "
        f"{args.serial_jobs} jobs one at a time",
        f"{'mode':<9}{'span s':>9}{'/raw':>8}{'/prefect':>10}{'ms/job':>9}{'/raw':>8}"
        f"{'/prefect':>10}{'told p50 ms':>13}{'-raw':>8}{'completed':>12}",
    ]
    for mode, r in results.items():
        lines.append(
            f"{mode:<9}{r.span_s:>9.2f}{ratio(r.span_s, raw and raw.span_s):>8}"
            f"{ratio(r.span_s, pf and pf.span_s):>10}{r.per_job_ms:>9.1f}"
            f"{ratio(r.per_job_ms, raw and raw.per_job_ms):>8}"
            f"{ratio(r.per_job_ms, pf and pf.per_job_ms):>10}{r.told_p50_ms:>13.1f}"
            f"{(r.told_p50_ms - raw.told_p50_ms) if raw else float('nan'):>+8.1f}"
            f"{f'{r.completed}/{r.jobs}':>12}"
        )
    lines += [
        "",
        f"CPU per job at {args.concurrency} at once, ms, by process (the cores are shared)",
        f"{'mode':<9}"
        + "".join(f"{role:>16}" for role in cpu_split.ROLES)
        + f"{'all':>10}{'server behind s':>17}",
    ]
    for mode, r in results.items():
        lines.append(
            f"{mode:<9}"
            + "".join(f"{r.cpu_ms.get(role, 0.0):>16.1f}" for role in cpu_split.ROLES)
            + f"{sum(r.cpu_ms.values()):>10.1f}{r.server_behind_s:>17.1f}"
        )
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--serial-jobs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3, help="jobs per mode before measuring")
    p.add_argument(
        "--rounds", type=int, default=3, help="concurrent batches per mode (medians shown)"
    )
    p.add_argument(
        "--server-wait",
        type=float,
        default=180.0,
        help="seconds to wait at most for the Prefect server to go idle after a batch",
    )
    p.add_argument("--database", default=None, help="default: a scratch PostgreSQL database")
    p.add_argument("--profile", choices=MODES, default=None)
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Measured]:
    from agent_dispatch.prefect_api import prefect_api

    with scratch_database(args.database) as url, running_sims() as sims, prefect_api():
        return measure(args, sims, Product(url, sims))


def main() -> None:
    args = parse()
    print(table(args, run(args)))


if __name__ == "__main__":
    main()
