"""Chaos block 2: several `agent-dispatch run` processes at once over one queue and database."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Job, JobDistributionRecord
from agent_dispatch.settings import Settings
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from benchmarks.chaos_env import BIN, World

TERMINAL = {"COMPLETED", "CANCELLED", "EXPIRED", "FAILED"}
AGENTS = {"w-fast-a": "fast:delay=0.05", "w-fast-b": "fast:delay=0.1", "w-fast-c": "fast:delay=0.2"}


def workers_block(w: World, workers: int, jobs: int) -> dict[str, Any]:
    queue, farm = SimulatedQueue(w.queue_token), AgentFarm()
    for name, spec in AGENTS.items():
        farm.add(name, spec, token=w.agent_token)
    with queue.serve() as q, farm.serve():
        w.queue_url, w.agent_urls = q.url, {n: farm.url_for(n) for n in AGENTS}
        rt = Runtime(Settings(database_url=w.database_url, agent_allow_private_networks=True))
        w.register_agents(
            rt, {n: {"categories": ["general"], "max_concurrency": 1000} for n in AGENTS}
        )
        for i in range(jobs):
            queue.add_task(title=f"job {i}", category="general", maxAgents=2)
        env = {"JOB_CONCURRENCY": "25", "QUEUE_PAGE_SIZE": "50", "CAPACITY_WAIT_SECONDS": "5"}
        started = time.monotonic()
        rounds = 0
        while rounds < 3 and queue.counts()["OPEN"] > 0:  # a late round takes what is left
            procs = [
                w.spawn(
                    [str(BIN / "agent-dispatch"), "run"],
                    f"parallel-{rounds}-{k}",
                    w.worker_env(WORKER_NAME=f"parallel-{k}", **env),
                )
                for k in range(workers)
            ]
            codes = [p.wait(1800) for p in procs]
            rounds += 1
        elapsed = time.monotonic() - started
        patches = queue.patches
        with rt.uow() as uow:
            local = Counter(s for (s,) in uow.session.execute(select(Job.status)))
            per_run = [
                n
                for (n,) in uow.session.execute(
                    select(func.count(func.distinct(JobDistributionRecord.job_id))).group_by(
                        JobDistributionRecord.flow_run_id
                    )
                )
            ]
            attempts = Counter(a for (a,) in uow.session.execute(select(Job.attempts)))
        rt.dispose()
        takes = Counter(
            p.task_id
            for p in patches
            if p.status_code == 200 and p.body.get("status") == "DISTRIBUTED"
        )
        refused = sum(
            1 for p in patches if p.status_code == 409 and p.body.get("status") == "DISTRIBUTED"
        )
        tasks = [
            t["id"]
            for s in ("OPEN", *TERMINAL, "DISTRIBUTED", "IN_PROGRESS")
            for t in queue.tasks_in(s)
        ]
        finishes = Counter(queue.finished_count(t) for t in tasks)
        calls = farm.summary()["executions"]
    return {
        "jobs": jobs,
        "workers": workers,
        "seconds": elapsed,
        "rounds": rounds,
        "codes": codes,
        "takes": Counter(takes.get(t, 0) for t in tasks),
        "refused": refused,
        "finishes": finishes,
        "local": local,
        "per_run": per_run,
        "attempts": attempts,
        "max_calls_per_key": max(calls.values(), default=0),
        "done": sum(queue.counts()[s] for s in TERMINAL),
    }


def print_workers(f: dict[str, Any]) -> None:
    def dist(c: Counter[int]) -> str:
        return ", ".join(f"{k}x: {v}" for k, v in sorted(c.items()))

    print(f"\n== 2. {f['workers']} concurrent workers over {f['jobs']} jobs ==")
    print(
        f"takes per job              {dist(f['takes'])} (take PATCHes refused 409: {f['refused']})"
    )
    print(f"finishes per job           {dist(f['finishes'])}")
    print(
        f"local attempts per job     {dist(f['attempts'])}; max calls per Idempotency-Key "
        f"{f['max_calls_per_key']}"
    )
    print(
        "local end states           " + ", ".join(f"{k} {v}" for k, v in sorted(f["local"].items()))
    )
    runs = sorted(f["per_run"], reverse=True)
    runs += [0] * (f["workers"] * f["rounds"] - len(runs))  # runs that took no job
    print(f"jobs per worker run        {runs} ({f['rounds']} round(s) of {f['workers']} processes)")
    print(
        f"throughput                 {f['done'] / f['seconds']:.1f} jobs/s "
        f"({f['done']} finished in {f['seconds']:.0f} s, process start-up included)"
    )
