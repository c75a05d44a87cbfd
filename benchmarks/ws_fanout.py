"""Live-feed fan-out: N WebSocket clients connected while a worker process dispatches M jobs.

    .venv/bin/python -m benchmarks.ws_fanout [--clients 200] [--jobs 1000] [--admin URL]

A fresh PostgreSQL database; the loopback queue and agents in this process; `agent-dispatch
serve --no-flows` and a lean dispatch worker (the plain services, no Prefect) as processes
of their own. Every client must receive every change-log row of the run: lost = rows in the
log a client never got. Delay = time a client received a change - the change's `at` (set in
the worker when the status was written, before its commit), over every client and change.
Not a timed test: a measurement, published in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from array import array
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import create_engine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agent_dispatch.db.change_log import read_after
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent
from agent_dispatch.settings import normalize_database_url
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue

QUEUE_TOKEN, API_TOKEN = "bench-queue", "bench-api"
CLI = str(Path(sys.executable).with_name("agent-dispatch"))


class Client:
    """Keeps (change id, arrival time) compactly; reconnects with after= when dropped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ids = array("q")
        self.times = array("d")
        self.reconnects = 0
        self.ready = asyncio.Event()

    @property
    def last(self) -> int:
        return self.ids[-1] if self.ids else 0

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        while True:
            url = self.url + (f"?after={self.last}" if self.ids else "")
            try:
                async with connect(url, additional_headers=headers, max_queue=None) as ws:
                    async for raw in ws:
                        now = time.time()
                        message = json.loads(raw)
                        if isinstance(message, list):  # a frame of changes
                            for change in message:
                                self.ids.append(change["id"])
                                self.times.append(now)
                        else:
                            self.ready.set()  # the hello: subscribed
            except ConnectionClosed:
                self.reconnects += 1
                await asyncio.sleep(0.2)


def lean_worker() -> None:
    """The dispatch services without Prefect, until the queue has no OPEN task left."""
    from agent_dispatch.bootstrap import Runtime
    from agent_dispatch.services.deps import NullEvents
    from agent_dispatch.services.dispatching import PlainSteps, dispatch_one
    from agent_dispatch.services.intake import store_and_lease
    from agent_dispatch.services.job_pool import JobPool
    from agent_dispatch.services.queue_io import fetch_open_page
    from agent_dispatch.settings import Settings

    class Quiet:
        def add(self, n: int) -> None:
            return None

        async def job_done(self, line: object) -> None:
            return None

    async def run() -> None:
        rt = Runtime(Settings())
        rt.events = NullEvents()
        steps = PlainSteps(rt)
        pool = JobPool(
            rt.settings.job_concurrency,
            lambda c: dispatch_one(steps, c, rt.settings.capacity_wait_seconds),
            Quiet(),
        )
        cursor = None
        while True:
            page = await fetch_open_page(rt, cursor, 100)
            backlog = list(page.tasks)
            while backlog:
                room = await pool.room(None)
                batch, backlog = backlog[:room], backlog[room:]
                pool.start((await store_and_lease(rt, batch, len(batch))).claims)
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        lines = await pool.drain()
        print(f"worker: {len(lines)} jobs, {sum(j.outcome == 'COMPLETED' for j in lines)} done")
        await rt.aclose_clients()

    asyncio.run(run())


async def wait_for_server(base: str) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, trust_env=False) as http:
        for _ in range(300):
            try:
                if (await http.get("/api/meta")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("agent-dispatch serve did not start")


async def caught_up(clients: list[Client], last: int, seconds: float) -> None:
    """Until every client has received change `last` (or `seconds` are up)."""
    deadline = time.monotonic() + seconds
    while any(c.last < last for c in clients) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


async def bench(args: argparse.Namespace) -> None:
    name = f"ad_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = args.admin.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(normalize_database_url(url))
    upgrade(engine)
    queue, farm = SimulatedQueue(QUEUE_TOKEN), AgentFarm()
    procs: list[asyncio.subprocess.Process] = []
    try:
        with queue.serve(), farm.serve():
            with engine.begin() as conn:
                for i in range(args.agents):
                    farm.add(f"agent{i}", "fast:delay=0.05")
                    conn.execute(Agent.__table__.insert().values(  # type: ignore[attr-defined]
                        id=str(uuid.uuid4()), name=f"agent{i}", url=farm.url_for(f"agent{i}"),
                        protocol="http-json", categories=["general"], tags=[], skill_level=3,
                        max_concurrency=40, active=True, runs=0, successes=0, failures=0,
                        timeouts=0, wins=0, cancelled=0, reputation=0.5, consecutive_failures=0,
                    ))  # fmt: skip
            for i in range(args.jobs):
                queue.add_task(title=f"bench {i}")
            port = 18_000 + os.getpid() % 1000
            env = {**os.environ, "DATABASE_URL": url, "REMOTE_QUEUE_URL": queue.url,
                   "REMOTE_QUEUE_TOKEN": QUEUE_TOKEN, "AGENT_ALLOW_PRIVATE_NETWORKS": "true",
                   "API_TOKEN": API_TOKEN, "JOB_CONCURRENCY": "40", "MAX_AGENTS_PER_JOB": "2",
                   "PREFECT_LOGGING_LEVEL": "WARNING"}  # fmt: skip
            server = await asyncio.create_subprocess_exec(
                CLI, "serve", "--no-flows", "--port", str(port), env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            procs.append(server)
            base = f"http://127.0.0.1:{port}"
            await wait_for_server(base)
            clients = [Client(base.replace("http", "ws") + "/api/ws") for _ in range(args.clients)]
            tasks = [asyncio.create_task(c.run()) for c in clients]
            await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 120)
            print(f"{args.clients} clients connected; dispatching {args.jobs} jobs")
            started = time.monotonic()
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.ws_fanout", "--worker", env=env)  # fmt: skip
            await worker.wait()
            run_seconds = time.monotonic() - started
            with engine.connect() as conn:
                from sqlalchemy.orm import Session

                with Session(bind=conn) as session:
                    log = list(read_after(session, 0, 10_000_000))
            last = log[-1].id
            await caught_up(clients, last, 120)
            drained = time.monotonic() - started
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for p in procs:
            p.terminate()
            await p.wait()
        engine.dispose()
        with psycopg.connect(args.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

    at = {c.id: c.at.timestamp() for c in log}
    wanted = set(at)
    delays: list[float] = []
    lost = duplicates = out_of_order = 0
    for c in clients:
        got = list(c.ids)
        lost += len(wanted - set(got))
        duplicates += len(got) - len(set(got))
        out_of_order += sum(1 for a, b in itertools.pairwise(got) if b <= a)
        delays += [t - at[i] for i, t in zip(got, c.times, strict=True) if i in at]
    delays.sort()
    print(f"jobs {args.jobs}, clients {args.clients}, changes in the log {len(log)}")
    print(f"run {run_seconds:.1f} s (all delivered after {drained:.1f} s)")
    print(f"events delivered {len(delays)} (expected {len(log) * args.clients}), lost {lost}, "
          f"duplicates {duplicates}, out of order {out_of_order}, "
          f"reconnects {sum(c.reconnects for c in clients)}")  # fmt: skip
    p50, p99 = percentile(delays, 0.5) * 1000, percentile(delays, 0.99) * 1000
    print(f"delay p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {delays[-1] * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lean_worker()
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
