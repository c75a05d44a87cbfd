"""A real PostgreSQL for tests: the machine's server, or a private cluster from its binaries."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import psycopg

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binaries() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError("no PostgreSQL server reachable at 127.0.0.1:5432 and no initdb found")


@contextlib.contextmanager
def private_cluster() -> Iterator[str]:
    """initdb + pg_ctl start in a temp dir (as the postgres user when we are root)."""
    bindir = _binaries()
    root = tempfile.mkdtemp(prefix="ad-pg-")
    data = os.path.join(root, "data")
    port = _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*prefix, f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            f"{bindir}/pg_ctl",
            "-D",
            data,
            "-l",
            f"{root}/log",
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while not _reachable(url):
            if time.monotonic() > deadline:
                raise RuntimeError("private PostgreSQL cluster did not start")
            time.sleep(0.2)
        yield url
    finally:
        subprocess.run(
            [*prefix, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def admin_url() -> Iterator[str]:
    if _reachable(DEFAULT_ADMIN):
        yield DEFAULT_ADMIN
        return
    with private_cluster() as url:
        yield url


def with_db(admin: str, name: str) -> str:
    return admin.rsplit("/", 1)[0] + "/" + name


class DatabaseFactory:
    """Creates a fresh database per test from a migrated template (fast: a file copy)."""

    def __init__(self, admin: str) -> None:
        self.admin = admin
        self.template = f"ad_template_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    def _exec(self, sql: str) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def prepare_template(self) -> None:
        from sqlalchemy import create_engine

        from agent_dispatch.db.migrate import upgrade
        from agent_dispatch.settings import normalize_database_url

        self._exec(f'CREATE DATABASE "{self.template}"')
        engine = create_engine(normalize_database_url(with_db(self.admin, self.template)))
        upgrade(engine)
        engine.dispose()

    def new(self) -> str:
        name = f"ad_test_{uuid.uuid4().hex[:12]}"
        self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return with_db(self.admin, name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for name in [*self.created, self.template]:
            with contextlib.suppress(psycopg.Error):
                self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
