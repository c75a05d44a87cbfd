"""A backlog nobody can serve: two dispatch runs over N OPEN tasks in a category no agent has.

    .venv/bin/python -m benchmarks.unserved_backlog [--sizes 2000,10000] [--before-src DIR]

Each size gets a fresh PostgreSQL database, a loopback queue holding N tasks in category
'legal' and three fast agents serving only 'general'. Two `dispatch` flow runs go over the
same backlog: the first judges every task; the second finds the agents unchanged. Each size
is measured in a child process of its own (a fresh interpreter), against one Prefect server
started once for all of them.
`--before-src DIR` also measures another checkout (e.g. main before this change) side by side
in the same run, its code imported from DIR. After each run the benchmark checks that every
task is still OPEN on the queue and that every job records why it waits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = "bench-token"
AGENTS = ("general-a", "general-b", "general-c")


def url_of(admin: str, name: str) -> str:
    return admin.rsplit("/", 1)[0] + "/" + name


@flow
async def warm_up() -> None:
    """A flow with one task run: the temporary Prefect server is up before any timing."""
    await noop()


@task(cache_policy=NO_CACHE)
async def noop() -> None:
    return None


def measure(database_url: str, size: int, runs: int, page_size: int | None) -> dict[str, Any]:
    """In the child: seed the queue and agents, run the flow `runs` times, time each run."""
    from agent_dispatch.bootstrap import Runtime, set_runtime
    from agent_dispatch.db.migrate import upgrade
    from agent_dispatch.db.models import Agent, Job
    from agent_dispatch.settings import Settings
    from agent_dispatch.simulators.agents import AgentFarm
    from agent_dispatch.simulators.queue import SimulatedQueue

    queue = SimulatedQueue(TOKEN)
    farm = AgentFarm({n: "fast:delay=0" for n in AGENTS})
    with contextlib.ExitStack() as stack:
        stack.enter_context(queue.serve())
        stack.enter_context(farm.serve())
        overrides: dict[str, Any] = {
            "database_url": database_url,
            "remote_queue_url": queue.url,
            "remote_queue_token": TOKEN,
            "agent_allow_private_networks": True,
        }
        if page_size:
            overrides["queue_page_size"] = page_size
        rt = Runtime(Settings.model_validate(overrides))
        set_runtime(rt)
        upgrade(rt.engine)
        with rt.uow() as uow:
            for n in AGENTS:
                uow.agents.add(Agent(name=n, url=farm.url_for(n), categories=["general"]))
            uow.commit()
        for i in range(size):
            queue.add_task(title=f"contract {i}", category="legal")
        from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow

        asyncio.run(warm_up())  # start Prefect's temporary server outside the timed runs
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            asyncio.run(dispatch_flow(DispatchParams()))  # type: ignore[arg-type]
            seconds.append(time.perf_counter() - started)
        with rt.uow() as uow:
            jobs = uow.session.query(Job).all()
            explained = sum(1 for j in jobs if j.match_summary)
            open_jobs = sum(1 for j in jobs if j.status == "OPEN")
        still_open = len(queue.tasks_in("OPEN"))
        rt.dispose()
    return {
        "size": size,
        "seconds": seconds,
        "jobs": len(jobs),
        "open_jobs": open_jobs,
        "explained": explained,
        "queue_open": still_open,
    }


def child(
    admin: str,
    prefect: dict[str, str],
    size: int,
    runs: int,
    page_size: int | None,
    src: str | None,
) -> Any:
    """Measure in a fresh interpreter; with `src`, the package is imported from that tree."""
    name = f"ad_backlog_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        args = json.dumps([url_of(admin, name), size, runs, page_size])
        code = (
            "import importlib.util, json, sys\n"
            f"spec = importlib.util.spec_from_file_location('bench_backlog', {__file__!r})\n"
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            f"print(json.dumps(mod.measure(*json.loads({args!r}))))\n"
        )
        env = {**os.environ, **prefect}
        if src is not None:  # ahead of the editable install's finder
            code = f"import sys; sys.path.insert(0, {src!r})\n" + code
            env["PYTHONPATH"] = src
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
        )
        if proc.returncode != 0:
            raise RuntimeError(f"run over {size} tasks failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def check(result: dict[str, Any]) -> None:
    n = result["size"]
    if not result["jobs"] == result["open_jobs"] == result["explained"] == result["queue_open"]:
        raise AssertionError(f"{n} tasks should all wait, each with its reason: {result}")
    if result["jobs"] != n:
        raise AssertionError(f"{n} tasks on the queue but {result['jobs']} jobs stored")


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    head = f"{'code':<8}{'tasks':>8}{'run 1 s':>10}{'run 2 s':>10}{'run 2 ms/task':>15}"
    lines = [head, "-" * len(head)]
    for label, r in rows:
        first, second = r["seconds"][0], r["seconds"][-1]
        lines.append(
            f"{label:<8}{r['size']:>8,}{first:>10.2f}{second:>10.2f}"
            f"{second / r['size'] * 1000:>15.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    # Imported here, not at the top: a --before-src child loads this file under another tree.
    from benchmarks.memory_run import PREFECT_API_URL_HELP, prefect_server

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="2000,10000", help="comma-separated task counts")
    p.add_argument("--before-src", default=None, help="also measure the checkout in DIR")
    p.add_argument("--before-sizes", default=None, help="sizes for --before-src (default all)")
    p.add_argument("--page-size", type=int, default=None, help="QUEUE_PAGE_SIZE (default 50)")
    p.add_argument("--admin-url", default=ADMIN)
    p.add_argument("--prefect-api-url", default=None, help=PREFECT_API_URL_HELP)
    args = p.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    before = [int(s) for s in args.before_sizes.split(",")] if args.before_sizes else sizes
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        prefect_server(Path(tmp), args.prefect_api_url) as api_url,
    ):
        for size in sizes:
            runs: list[tuple[str, str | None]] = [("after", None)]
            if args.before_src and size in before:
                runs.insert(0, ("before", str(Path(args.before_src).resolve())))
            for label, src in runs:
                prefect = {"PREFECT_API_URL": api_url, "PREFECT_HOME": tmp}
                result = child(args.admin_url, prefect, size, 2, args.page_size, src)
                check(result)
                rows.append((label, result))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    print("\n" + table(rows))
    return rows


if __name__ == "__main__":
    main()
