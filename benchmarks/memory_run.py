"""Peak RSS of `agent-dispatch run` as the number of jobs grows: does memory stay flat?

    .venv/bin/python -m benchmarks.memory_run [--jobs 1000,5000,10000] [--agents-per-job 1]
        [--modes traced,lean]

One Prefect server (a subprocess, started once) serves every run, so each `agent-dispatch run`
is a child process of its own with nothing else in it; its peak RSS is the child's
`ru_maxrss` from wait4 (the kernel's high-water mark for that process). Each size gets a
fresh PostgreSQL database, a loopback queue with N tasks and three instant agents, all in
this process. Every run must complete all N jobs. `--modes` runs each size in each
DISPATCH_MODE (the ratio column compares a row with the first row of its mode).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = "bench-token"
AGENTS = ("instant-a", "instant-b", "instant-c")
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PREFECT_API_URL_HELP = "a Prefect server already running (default: start a temporary one)"


@contextlib.contextmanager
def prefect_server(home: Path, api_url: str | None = None) -> Iterator[str]:
    """`prefect server start` in its own process group; yields its API URL once healthy.
    Given `api_url` (--prefect-api-url: a server already running), yields that instead."""
    if api_url:
        yield api_url
        return
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/health", timeout=2) as r,
            ):
                if r.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prefect server did not start; see {home / 'server.log'}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the group this function started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def one_run(
    admin: str, api_url: str, home: Path, jobs: int, per_job: int, mode: str = "traced"
) -> dict[str, Any]:
    from agent_dispatch.bootstrap import Runtime
    from agent_dispatch.db.migrate import upgrade
    from agent_dispatch.db.models import Agent
    from agent_dispatch.settings import Settings
    from agent_dispatch.simulators.agents import AgentFarm
    from agent_dispatch.simulators.queue import SimulatedQueue

    name = f"ad_mem_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = admin.rsplit("/", 1)[0] + "/" + name
    queue = SimulatedQueue(TOKEN)
    farm = AgentFarm({n: "fast:delay=0" for n in AGENTS})
    try:
        with queue.serve(), farm.serve():
            rt = Runtime(Settings.model_validate({"database_url": url}))
            upgrade(rt.engine)
            with rt.uow() as uow:
                for n in AGENTS:
                    uow.agents.add(
                        Agent(
                            name=n,
                            url=farm.url_for(n),
                            categories=["general"],
                            max_concurrency=jobs,
                        )
                    )
                uow.commit()
            rt.dispose()
            for i in range(jobs):
                queue.add_task(title=f"job {i}", category="general")
            env = {
                **os.environ,
                "PREFECT_HOME": str(home),
                "PREFECT_API_URL": api_url,
                "DATABASE_URL": url,
                "REMOTE_QUEUE_URL": str(queue.url),
                "REMOTE_QUEUE_TOKEN": TOKEN,
                "AGENT_ALLOW_PRIVATE_NETWORKS": "true",
                "MAX_AGENTS_PER_JOB": str(per_job),
                "DISPATCH_MODE": mode,
            }
            started = time.perf_counter()
            proc = subprocess.Popen(
                [str(BIN / "agent-dispatch"), "run", "--json"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(home / f"run-{mode}-{jobs}.log").open("w"),
            )
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            done = queue.counts().get("COMPLETED", 0)
        if proc.returncode != 0 or done != jobs:
            raise RuntimeError(f"run over {jobs} jobs: exit {proc.returncode}, {done} completed")
        peak = usage.ru_maxrss / 1024
        return {"mode": mode, "jobs": jobs, "peak_rss_mb": peak, "seconds": seconds}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'mode':<8}{'jobs':>8}{'peak RSS MB':>14}{'x first':>9}{'seconds':>10}{'ms/job':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        base = next(b for b in rows if b["mode"] == r["mode"])
        ratio = r["peak_rss_mb"] / base["peak_rss_mb"]
        lines.append(
            f"{r['mode']:<8}{r['jobs']:>8,}{r['peak_rss_mb']:>14.1f}{ratio:>9.2f}"
            f"{r['seconds']:>10.1f}{r['seconds'] / r['jobs'] * 1000:>9.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", default="1000,5000,10000", help="comma-separated job counts")
    p.add_argument("--agents-per-job", type=int, default=1, help="MAX_AGENTS_PER_JOB")
    p.add_argument("--modes", default="traced", help="comma-separated DISPATCH_MODEs")
    p.add_argument("--admin-url", default=ADMIN)
    p.add_argument("--prefect-api-url", default=None, help=PREFECT_API_URL_HELP)
    args = p.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.jobs.split(",")]
    modes = args.modes.split(",")
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        prefect_server(Path(tmp), args.prefect_api_url) as api_url,
    ):
        for mode in modes:
            for n in sizes:
                print(f"agent-dispatch run over {n:,} jobs ({mode}) ...", flush=True)
                rows.append(
                    one_run(args.admin_url, api_url, Path(tmp), n, args.agents_per_job, mode)
                )
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    print("\n" + table(rows))
    return rows


if __name__ == "__main__":
    main()
