"""The chaos harness's world: a fresh PostgreSQL database, one Prefect server, the standalone
simulators process, and `agent-dispatch` child processes pointed at them."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
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

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("CHAOS_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:  # loopback admin endpoints only
        return json.loads(r.read())


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    name = f"chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        from sqlalchemy import create_engine

        from agent_dispatch.db.migrate import upgrade
        from agent_dispatch.settings import normalize_database_url

        engine = create_engine(normalize_database_url(url))
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


class World:
    """Everything the blocks share; children get `env`, output lands in `logdir`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.database_url = ""  # set per block (a fresh database each)
        # Canary secrets: real tokens the simulators demand, searched for in everything after.
        self.queue_token = "canaryQ" + secrets.token_hex(12)
        self.agent_token = "canaryA" + secrets.token_hex(12)
        self.prefect_home = workdir / "prefect"
        self.prefect_home.mkdir()
        self.prefect_url = ""
        self.queue_url = ""
        self.agent_urls: dict[str, str] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.outputs: list[Path] = []

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="INFO",
            PYTHONPATH=str(ROOT),
        )
        if self.prefect_url:
            env["PREFECT_API_URL"] = self.prefect_url
        return env

    def worker_env(self, **overrides: str) -> dict[str, str]:
        env = self.base_env()
        env.update(
            DATABASE_URL=self.database_url,
            REMOTE_QUEUE_URL=self.queue_url,
            REMOTE_QUEUE_TOKEN=self.queue_token,
            AGENT_TOKENS=json.dumps({"farm": self.agent_token}),
            AGENT_ALLOW_PRIVATE_NETWORKS="true",  # the simulated agents live on loopback
        )
        env.update(overrides)
        return env

    def spawn(self, args: list[str], name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = self.workdir / f"{name}.log"
        self.outputs.append(out)
        with out.open("wb") as fh:
            proc = subprocess.Popen(
                args, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def start_prefect(self) -> None:
        port = free_port()
        self.spawn(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            "prefect-server",
            self.base_env(),
        )
        url = f"http://127.0.0.1:{port}/api"
        wait_until(lambda: _ok(url + "/health"), 90, "prefect server")
        self.prefect_url = url

    def start_simulators(self, agents: dict[str, str], jobs: int, **extra: str) -> None:
        args = [
            sys.executable,
            "-m",
            "agent_dispatch.simulators",
            "--token",
            self.queue_token,
            "--agent-token",
            self.agent_token,
            "--jobs",
            str(jobs),
            "--agents",
            ",".join(f"{n}={b}" for n, b in agents.items()),
        ]
        for key, value in extra.items():
            args += [f"--{key.replace('_', '-')}", value]
        proc = self.spawn(args, "simulators", self.base_env())
        log = self.workdir / "simulators.log"
        wait_until(lambda: log.read_text().strip() != "", 30, "simulators")
        first = json.loads(log.read_text().splitlines()[0])
        self.queue_url, self.agent_urls = first["queue_url"], first["agents"]
        self.farm_url = first["farm_url"]
        self.simulators = proc

    def register_agents(self, rt: Any, specs: dict[str, dict[str, Any]]) -> None:
        from agent_dispatch.db.models import Agent

        with rt.uow() as uow:
            for name, fields in specs.items():
                uow.agents.add(
                    Agent(name=name, url=self.agent_urls[name], token_ref="farm", **fields)
                )
            uow.commit()

    def cli(self, *args: str, name: str, timeout: float = 300, **env: str) -> tuple[int, str]:
        """Run `agent-dispatch ARGS` to the end; returns its exit code and output."""
        proc = self.spawn([str(BIN / "agent-dispatch"), *args], name, self.worker_env(**env))
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
            code = -9
        return code, (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    kill(proc)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 the process and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _ok(url: str) -> bool:
    try:
        get_json(url)
        return True
    except OSError:
        return False


def wait_until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {seconds:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def world() -> Iterator[World]:
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        w = World(Path(tmp))
        try:
            yield w
        finally:
            w.stop()
