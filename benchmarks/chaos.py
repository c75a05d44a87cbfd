"""Chaos run: kill -9 workers, run several at once, hostile agents, SSRF forms, canary secrets.

    .venv/bin/python -m benchmarks.chaos [--kills 50] [--jobs 2000] [--skip-kill]

Needs PostgreSQL at 127.0.0.1:5432 (or CHAOS_ADMIN_URL). Prints five blocks of figures.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.models import Job, JobDistributionRecord
from agent_dispatch.settings import Settings
from benchmarks.chaos_env import World, fresh_database, get_json, kill, world

TERMINAL = {"COMPLETED", "CANCELLED", "EXPIRED", "FAILED"}
KILL_ENV = {
    "JOB_LEASE_SECONDS": "5",  # the smallest lease: rescue within seconds of a kill
    "LEASE_CHECK_SECONDS": "0.5",
    "JOB_CONCURRENCY": "5",
    "QUEUE_PAGE_SIZE": "10",
    "JOB_MAX_ATTEMPTS": "50",  # killed jobs are retried, not failed, so the figures show work
    "DEFAULT_AGENT_TIMEOUT": "10000",
}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class RecoveryClock:
    """Per kill, the time until every job the killed worker held is back in a live worker's
    hands or finished (rescued), and until every one of them is finished."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # (killed at, dead worker, its jobs, jobs not rescued yet, rescued after)
        self.pending: list[tuple[float, str, set[str], set[str], float | None]] = []
        self.rescued: list[float] = []
        self.finished: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def orphans_of(self, worker: str) -> set[str]:
        with self.rt.uow() as uow:
            rows = uow.session.execute(
                select(Job.id).where(Job.lease_owner == worker, Job.status.not_in(TERMINAL))
            )
            return {r[0] for r in rows}

    def killed(self, at: float, worker: str, orphans: set[str]) -> None:
        if orphans:
            with self.lock:
                self.pending.append((at, worker, orphans, set(orphans), None))

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            with self.lock:
                waiting = list(self.pending)
            if not waiting:
                continue
            with self.rt.uow() as uow:
                ids = set().union(*(o for _, _, o, _, _ in waiting))
                rows = uow.session.execute(
                    select(Job.id, Job.status, Job.lease_owner).where(Job.id.in_(ids))
                )
                state = {i: (s, owner) for i, s, owner in rows}
            for j in ids - state.keys():
                state[j] = ("MISSING", None)  # a deleted job: never rescued, never finished
            now = time.monotonic()
            with self.lock:
                keep = []
                for at, dead, orphans, left, rescued in self.pending:
                    if not orphans <= state.keys():  # killed after this round's snapshot
                        keep.append((at, dead, orphans, left, rescued))
                        continue
                    left = {j for j in left if not _rescued(state[j], dead)}
                    if not left and rescued is None:
                        rescued = now - at
                        self.rescued.append(rescued)
                    if any(state[j][0] not in TERMINAL for j in orphans):
                        keep.append((at, dead, orphans, left, rescued))
                    else:
                        self.finished.append(now - at)
                self.pending = keep


def _rescued(state: tuple[str, str | None], dead: str) -> bool:
    status, owner = state
    return status in TERMINAL or (owner is not None and owner != dead)


def kill_block(w: World, kills: int, jobs: int) -> dict[str, Any]:
    agents = {"quick": "fast:delay=0.5", "steady": "fast:delay=1.2", "poller": "async_poll:times=2"}
    w.start_simulators(agents, jobs)
    rt = Runtime(Settings(database_url=w.database_url, agent_allow_private_networks=True))
    w.register_agents(rt, {n: {"categories": ["general"], "max_concurrency": 100} for n in agents})
    clock = RecoveryClock(rt)
    rng = random.Random(7)
    started = time.monotonic()

    def start(i: int) -> subprocess.Popen[bytes]:
        args = [str(w_bin("agent-dispatch")), "run", "--max-jobs", "10"]
        return w.spawn(args, f"worker-{i}", w.worker_env(WORKER_NAME=f"chaos-{i}", **KILL_ENV))

    sweeps: list[subprocess.Popen[bytes]] = []
    current, done_early = start(0), 0
    for i in range(kills):
        nxt = start(i + 1)  # the next worker starts up while this one works
        deadline = time.monotonic() + 30
        while current.poll() is None and time.monotonic() < deadline:
            if clock.orphans_of(f"chaos-{i}"):
                break
            time.sleep(0.1)
        time.sleep(rng.uniform(0, 2.5))  # a random moment: claimed, taking, racing, finishing
        done_early += current.poll() is not None
        kill(current)
        at = time.monotonic()
        clock.killed(at, f"chaos-{i}", clock.orphans_of(f"chaos-{i}"))
        if all(p.poll() is not None for p in sweeps):  # one sweep at a time is plenty
            sweeps.append(
                w.spawn(
                    [str(w_bin("agent-dispatch")), "sweep", "--settle-seconds", "2"],
                    f"sweep-{i}",
                    w.worker_env(**KILL_ENV),
                )
            )
        current = nxt
    current.wait(300)
    for p in sweeps:
        p.wait(120)
    # Final recovery: sweep and run until every queue task is finished (or 5 minutes pass).
    rounds, give_up = 0, time.monotonic() + 300
    while time.monotonic() < give_up:
        state = get_json(w.queue_url + "/_sim/state")
        if sum(state["counts"][s] for s in TERMINAL) == jobs:
            break
        time.sleep(5.5)  # past JOB_LEASE_SECONDS, so every orphan lease has expired
        w.cli("sweep", "--settle-seconds", "0", name=f"final-sweep-{rounds}", **KILL_ENV)
        w.cli("run", name=f"final-run-{rounds}", WORKER_NAME=f"final-{rounds}", **KILL_ENV)
        rounds += 1
    w.cli("sweep", "--settle-seconds", "0", name="last-sweep", **KILL_ENV)
    elapsed = time.monotonic() - started
    clock.stop.set()
    state = get_json(w.queue_url + "/_sim/state")
    calls = get_json(w.farm_url + "/_sim/calls")
    figures = _kill_figures(rt, state, calls, jobs)
    figures.update(
        kills=kills,
        exited_before_kill=done_early,
        rescued=clock.rescued,
        finished=clock.finished,
        unrecovered=len(clock.pending),
        sweeps=len(sweeps),
        seconds=elapsed,
        final_rounds=rounds,
    )
    rt.dispose()
    kill(w.simulators)
    return figures


def _kill_figures(
    rt: Runtime, state: dict[str, Any], calls: dict[str, Any], jobs: int
) -> dict[str, Any]:
    finished = state["finished"]
    with rt.uow() as uow:
        local = {q: s for q, s in uow.session.execute(select(Job.queue_task_id, Job.status))}
        dist_job = {
            d: q
            for d, q in uow.session.execute(
                select(JobDistributionRecord.id, Job.queue_task_id).join(Job)
            )
        }
        attempts = [a for (a,) in uow.session.execute(select(Job.attempts))]
    per_pair: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for key, n in calls["executions"].items():
        dist, agent = key.split(":", 1)
        per_pair[(dist_job.get(dist, dist), agent)][key] += n
    repeats_same_key = sum(n - 1 for c in per_pair.values() for n in c.values() if n > 1)
    repeats_new_key = sum(len(c) - 1 for c in per_pair.values() if len(c) > 1)
    lost = [t for t in local if local[t] not in TERMINAL]
    queue_open = jobs - sum(state["counts"][s] for s in TERMINAL)
    return {
        "jobs": jobs,
        "lost": len(lost) + max(0, jobs - len(local)),
        "queue_not_finished": queue_open,
        "finished_twice": len(state["finishedMoreThanOnce"]),
        "finished_once": sum(1 for n in finished.values() if n == 1),
        "local_status": Counter(local.values()),
        "executions": sum(calls["executions"].values()),
        "repeat_same_key": repeats_same_key,
        "repeat_new_key": repeats_new_key,
        "max_per_key": max(calls["executions"].values(), default=0),
        "max_attempts": max(attempts, default=0),
    }


def w_bin(name: str) -> Any:
    from benchmarks.chaos_env import BIN

    return BIN / name


def print_kill(f: dict[str, Any]) -> None:
    res, fin = f["rescued"], f["finished"]
    print("\n== 1. kill -9 of running workers ==")
    print(
        f"kills                      {f['kills']} ({f['exited_before_kill']} worker(s) had "
        f"already finished their batch)"
    )
    print(
        f"jobs                       {f['jobs']} queue tasks; local end states "
        + ", ".join(f"{k} {v}" for k, v in sorted(f["local_status"].items()))
    )
    print(
        f"jobs lost                  {f['lost']} (queue tasks not finished: "
        f"{f['queue_not_finished']})"
    )
    print(
        f"jobs finished twice        {f['finished_twice']} (finished exactly once: "
        f"{f['finished_once']})"
    )
    print(
        f"agent calls                {f['executions']}; repeated with the same "
        f"Idempotency-Key: {f['repeat_same_key']}; repeated by a new attempt after a "
        f"rescue (new key): {f['repeat_new_key']}; max calls per key {f['max_per_key']}"
    )
    print(
        f"time to recovery           p50 {pct(res, 0.5):.1f} s, p99 {pct(res, 0.99):.1f} s "
        f"from a kill until every job it orphaned is held by a live worker again or finished"
    )
    print(
        f"                           (until all of them are finished: p50 {pct(fin, 0.5):.1f} s, "
        f"p99 {pct(fin, 0.99):.1f} s; {len(res)} of {f['kills']} kills orphaned jobs; "
        f"{f['unrecovered']} never finished)"
    )
    print(
        f"run time                   {f['seconds']:.0f} s ({f['sweeps']} sweeps during the "
        f"kills, one at a time; final recovery rounds: "
        f"{f['final_rounds']})"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--kill-jobs", type=int, default=300)
    p.add_argument("--jobs", type=int, default=2000, help="jobs for the 4-worker block")
    p.add_argument("--workers", type=int, default=4)
    args = p.parse_args()
    # Children run in their own sessions: turn a SIGTERM into an exit that stops them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The in-process simulators log clients that hang up mid-request (cancelled losers).
    # A filter, not a level: uvicorn resets its loggers' levels when a server starts.
    logging.getLogger("uvicorn.error").addFilter(lambda r: r.levelno >= logging.CRITICAL)
    from benchmarks import chaos_faults
    from benchmarks.chaos_workers import print_workers, workers_block

    with world() as w:
        w.start_prefect()
        with fresh_database() as url:
            w.database_url = url
            print_kill(kill_block(w, args.kills, args.kill_jobs))
            found = chaos_faults.scan_database(w, url)
        with fresh_database() as url:
            w.database_url = url
            print_workers(workers_block(w, args.workers, args.jobs))
            found += chaos_faults.scan_database(w, url)
        with fresh_database() as url:
            w.database_url = url
            chaos_faults.print_faults(chaos_faults.fault_matrix(w))
            found += chaos_faults.scan_database(w, url)
        chaos_faults.print_ssrf(chaos_faults.ssrf_table())
        chaos_faults.print_canary(w, found)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
