"""A real Prefect server on PostgreSQL, workers and CLI calls, each a subprocess of its own.

Everything lives under one temporary PREFECT_HOME; `PrefectStack.close()` ends every process
it started (by its own id) and drops the server's database.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg

from tests.support.postgres import with_db

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children first found via /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class Process:
    """A subprocess whose combined output goes to a log file (and is kept for asserts)."""

    def __init__(
        self, name: str, args: list[str], env: Mapping[str, str], log: Path, cwd: Path = REPO
    ) -> None:
        self.name = name
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            args,
            env=dict(env),
            cwd=cwd,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we can end it with its children
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self._fh.flush()
        return self.log.read_text(errors="replace")

    def kill_tree(self) -> list[int]:
        """SIGKILL this process and every descendant at once (a machine dying, say);
        flow runs live in process groups of their own, so a group kill would miss them."""
        victims = [self.proc.pid, *descendants(self.proc.pid)]
        signal_all(victims, signal.SIGKILL)
        self.proc.wait(30)
        return victims

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM it and its descendants, then SIGKILL whatever is left."""
        tree = descendants(self.proc.pid)
        if self.proc.poll() is None:
            signal_all([self.proc.pid], signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        signal_all([self.proc.pid, *tree, *descendants(self.proc.pid)], signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._fh.close()


class LineReader:
    """Collects a subprocess's stdout lines in a thread (for `prefect events stream`)."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args,
            env=dict(env),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def json_lines(self) -> list[dict[str, object]]:
        out = []
        for line in list(self.lines):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    out.append(value)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._thread.join(5)


class PrefectStack:
    """`prefect server start` on a fresh PostgreSQL database, plus workers and CLI calls."""

    def __init__(self, admin_url: str, *, flow_env: Mapping[str, str] | None = None) -> None:
        self.admin_url = admin_url
        self.db_name = f"prefect_e2e_{uuid.uuid4().hex[:10]}"
        self.root = Path(tempfile.mkdtemp(prefix="ad-prefect-"))
        self.home = self.root / "home"
        self.home.mkdir()
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.processes: list[Process] = []
        self.readers: list[LineReader] = []
        # Neither Prefect settings nor a clone path leak in from the calling shell.
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PREFECT_") and k != "AGENT_DISPATCH_HOME"
        }
        base.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_CLI_PROMPT": "false",
                "PREFECT_LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                "COLUMNS": "200",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        # Settings of agent-dispatch itself (DATABASE_URL, REMOTE_QUEUE_URL, ...) for workers.
        self.env = {**base, **(flow_env or {})}
        self._exec(f'CREATE DATABASE "{self.db_name}"')

    def _exec(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    @property
    def database_url(self) -> str:
        return with_db(self.admin_url, self.db_name).replace(
            "postgresql://", "postgresql+asyncpg://"
        )

    def start_server(self, timeout: float = 120.0, **extra_env: str) -> Process:
        env = {
            **self.env,
            "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url,
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_UI_API_URL": self.api_url,
            **extra_env,
        }
        server = self._spawn("server", ["prefect", "server", "start"], env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited:\n{server.output()[-4000:]}")
            url = f"{self.api_url}/health"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return server
            time.sleep(0.5)
        raise RuntimeError(
            f"prefect server not healthy in {timeout:.0f} s:\n{server.output()[-4000:]}"
        )

    def start_worker(self, pool: str, name: str, **extra_env: str) -> Process:
        """A process worker started outside any clone: it runs the flows from the package."""
        outside = self.root / f"worker-{name}-cwd"
        outside.mkdir(exist_ok=True)
        return self._spawn(
            f"worker-{name}",
            ["prefect", "worker", "start", "--pool", pool, "--name", name, "--type", "process"],
            {**self.env, **extra_env},
            cwd=outside,
        )

    def stream_events(self) -> LineReader:
        reader = LineReader(
            [str(BIN / "prefect"), "events", "stream", "--format", "json"], self.env
        )
        self.readers.append(reader)
        return reader

    def _spawn(
        self, name: str, args: list[str], env: Mapping[str, str], cwd: Path = REPO
    ) -> Process:
        args = [str(BIN / args[0]), *args[1:]]
        proc = Process(name, args, env, self.root / f"{name}.log", cwd=cwd)
        self.processes.append(proc)
        return proc

    def cli(self, *args: str, timeout: float = 180.0, **extra_env: str) -> str:
        """Run a CLI (`prefect ...`, `agent-dispatch ...`, `python ...`); return its output."""
        exe = sys.executable if args[0] == "python" else str(BIN / args[0])
        res = subprocess.run(
            [exe, *args[1:]],
            env={**self.env, **extra_env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out = res.stdout + res.stderr
        if res.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {res.returncode}:\n{out}")
        return out

    def close(self) -> None:
        for reader in self.readers:
            reader.stop()
        for proc in reversed(self.processes):
            proc.stop()
        with contextlib.suppress(psycopg.Error):
            self._exec(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def prefect_stack(
    admin_url: str, flow_env: Mapping[str, str] | None = None
) -> Iterator[PrefectStack]:
    stack = PrefectStack(admin_url, flow_env=flow_env)
    try:
        yield stack
    finally:
        stack.close()
