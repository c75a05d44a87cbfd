"""The CLI as a user runs it: a real subprocess, a real PostgreSQL database, real exit codes.

Every invocation costs a Python start-up (~2 s), so commands that need no shared state run
concurrently in one module fixture and the slow `run` against a closed queue port (it starts
Prefect's ephemeral server) runs in the background from the start of the module.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from agent_dispatch.db.migrate import alembic_config
from agent_dispatch.settings import Settings, normalize_database_url
from tests.support.postgres import DatabaseFactory, with_db

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEAD_DB = "postgresql://postgres@127.0.0.1:1/nope"
CLOSED_QUEUE = "http://127.0.0.1:1"
# Settings the child must not inherit from whoever runs the tests.
_SETTING_NAMES = {name.upper() for name in Settings.model_fields}


def child_env(prefect_home: Path, **overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT_") and k.upper() not in _SETTING_NAMES
    }
    env["PREFECT_HOME"] = str(prefect_home)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.update(overrides)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent_dispatch.cli.main", *args]


def cli(
    args: tuple[str, ...], prefect_home: Path, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        env=child_env(prefect_home, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def shown(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit `code`, nothing on stdout, exactly one line on stderr, no traceback; the line."""
    assert proc.returncode == code, shown(proc)
    assert "Traceback" not in proc.stderr, shown(proc)
    assert proc.stderr.endswith("\n"), shown(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, shown(proc)
    assert proc.stdout == "", shown(proc)
    return lines[0]


def assert_ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, shown(proc)
    assert proc.stderr == "", shown(proc)
    return proc.stdout


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture(scope="module")
def module_db(pg_factory: DatabaseFactory) -> Iterator[str]:
    """A fresh migrated database for commands that only read (or are refused before writing)."""
    url = pg_factory.new()
    try:
        yield url
    finally:
        pg_factory.drop(url)


# -- the slow `run` against a closed queue port, started first, checked last ---------------------


class Background:
    def __init__(self, proc: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.proc, self.out, self.err = proc, out, err

    def wait(self, timeout: float) -> subprocess.CompletedProcess[str]:
        self.proc.wait(timeout=timeout)
        return subprocess.CompletedProcess(
            self.proc.args, self.proc.returncode, self.out.read_text(), self.err.read_text()
        )


@pytest.fixture(scope="module", autouse=True)
def queue_down_run(
    module_db: str, prefect_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Background]:
    logs = tmp_path_factory.mktemp("run-queue-down")
    out, err = logs / "stdout", logs / "stderr"
    env = child_env(
        prefect_home,
        DATABASE_URL=module_db,
        REMOTE_QUEUE_URL=CLOSED_QUEUE,
        REMOTE_QUEUE_TOKEN="t",
        EXECUTION_RETRY_COUNT="0",  # fewer queue retries: the test is about the error line
        QUEUE_TIMEOUT_SECONDS="2",
        # A loaded test machine can take longer than Prefect's default 20 s to start its server.
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
    )
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            command("run"), env=env, cwd=ROOT, stdout=o, stderr=e, start_new_session=True
        )
    try:
        yield Background(proc, out, err)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# -- commands that need no shared state, run concurrently ------------------------------------


def _cases(db: str) -> dict[str, tuple[tuple[str, ...], dict[str, str]]]:
    private = {"DATABASE_URL": db, "AGENT_ALLOW_PRIVATE_NETWORKS": "true"}
    plain = {"DATABASE_URL": db}
    dead = {"DATABASE_URL": DEAD_DB, "REMOTE_QUEUE_URL": CLOSED_QUEUE}
    return {
        "add-missing-url": (("agents", "add", "x"), private),
        "add-skill-9": (
            ("agents", "add", "x", "http://a.example", "--category", "c", "--skill-level", "9"),
            private,
        ),
        "add-concurrency-0": (
            ("agents", "add", "x", "http://a.example", "--category", "c", "--max-concurrency", "0"),
            private,
        ),
        "add-bad-protocol": (
            ("agents", "add", "x", "http://a.example", "--category", "c", "--protocol", "soap"),
            private,
        ),
        "jobs-bad-status": (("jobs", "list", "--status", "NOPE"), plain),
        "run-negative-max-jobs": (("run", "--max-jobs", "-1"), plain),
        "unknown-command": (("frobnicate",), plain),
        "add-loopback-refused": (
            ("agents", "add", "lo", "http://127.0.0.1:9/", "--category", "c"),
            plain,
        ),
        "add-ftp-refused": (
            ("agents", "add", "f", "ftp://example.com/", "--category", "c"),
            private,
        ),
        "add-without-category": (("agents", "add", "n", "http://127.0.0.1:9/"), private),
        "jobs-show-unknown": (("jobs", "show", "nope"), plain),
        "jobs-cancel-unknown": (("jobs", "cancel", "nope"), plain),
        "jobs-list-empty": (("jobs", "list"), plain),
        "jobs-list-empty-json": (("jobs", "list", "--json"), plain),
        "agents-list-empty-json": (("agents", "list", "--json"), plain),
        "dead-db-run": (("run",), dead),
        "dead-db-upgrade": (("db", "upgrade"), dead),
        "dead-db-agents-list": (("agents", "list"), dead),
    }


@pytest.fixture(scope="module")
def batch(module_db: str, prefect_home: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    cases = _cases(module_db)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(cli, args, prefect_home, **env) for name, (args, env) in cases.items()
        }
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "add-missing-url",
            "agent-dispatch agents add: error: the following arguments are required: url",
        ),
        (
            "add-skill-9",
            "agent-dispatch agents add: error: argument --skill-level: '9' must be between 1 and 5",
        ),
        (
            "add-concurrency-0",
            "agent-dispatch agents add: error: argument --max-concurrency: '0' must be at least 1",
        ),
        (
            "jobs-bad-status",
            "agent-dispatch jobs list: error: argument --status: 'NOPE' is not a status "
            "(OPEN, DISTRIBUTED, IN_PROGRESS, COMPLETED, CANCELLED, EXPIRED, FAILED, SKIPPED)",
        ),
        (
            "run-negative-max-jobs",
            "agent-dispatch run: error: argument --max-jobs: '-1' must be at least 1",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    batch: dict[str, subprocess.CompletedProcess[str]], case: str, expected: str
) -> None:
    line = assert_one_line_error(batch[case], 2)
    assert "error:" in line
    assert line == expected


@pytest.mark.parametrize("case", ["unknown-command", "add-bad-protocol"])
def test_other_usage_errors_exit_2_with_one_line(
    batch: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    line = assert_one_line_error(batch[case], 2)
    assert "error:" in line
    expected_start = {
        "unknown-command": "agent-dispatch: error: argument COMMAND: invalid choice: 'frobnicate'",
        "add-bad-protocol": "agent-dispatch agents add: error: argument --protocol: "
        "invalid choice: 'soap'",
    }[case]
    assert line.startswith(expected_start), line


def test_loopback_agent_url_refused_without_private_networks(
    batch: dict[str, subprocess.CompletedProcess[str]], module_db: str
) -> None:
    line = assert_one_line_error(batch["add-loopback-refused"], 1)
    assert line == (
        "agent-dispatch: agent URL refused: '127.0.0.1' resolves to loopback address 127.0.0.1"
    )


def test_ftp_scheme_refused(batch: dict[str, subprocess.CompletedProcess[str]]) -> None:
    line = assert_one_line_error(batch["add-ftp-refused"], 1)
    assert line == "agent-dispatch: agent URL refused: scheme 'ftp' is not http or https"


def test_agent_without_category_refused(batch: dict[str, subprocess.CompletedProcess[str]]) -> None:
    line = assert_one_line_error(batch["add-without-category"], 1)
    assert line == "agent-dispatch: give at least one --category the agent can work on"


def test_refused_adds_stored_nothing(
    batch: dict[str, subprocess.CompletedProcess[str]], module_db: str
) -> None:
    assert batch["add-loopback-refused"].returncode == 1
    with psycopg.connect(module_db) as conn:
        assert conn.execute("SELECT count(*) FROM agents").fetchone() == (0,)


def test_jobs_show_unknown(batch: dict[str, subprocess.CompletedProcess[str]]) -> None:
    line = assert_one_line_error(batch["jobs-show-unknown"], 1)
    assert line == "agent-dispatch: no job 'nope'"


def test_jobs_cancel_unknown(batch: dict[str, subprocess.CompletedProcess[str]]) -> None:
    line = assert_one_line_error(batch["jobs-cancel-unknown"], 1)
    assert line == "agent-dispatch: no job 'nope'"


def test_empty_lists_say_so(batch: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert assert_ok(batch["jobs-list-empty"]) == "no jobs\n"
    assert json.loads(assert_ok(batch["jobs-list-empty-json"])) == []
    assert json.loads(assert_ok(batch["agents-list-empty-json"])) == []


def test_db_upgrade_with_unreachable_database_is_one_line(
    batch: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    line = assert_one_line_error(batch["dead-db-upgrade"], 1)
    assert line.startswith("agent-dispatch: cannot reach the database: "), line


@pytest.mark.parametrize("case", ["dead-db-run", "dead-db-agents-list"])
def test_unreachable_database_is_one_line_not_a_traceback(
    batch: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    proc = batch[case]
    assert proc.returncode != 0, shown(proc)
    line = assert_one_line_error(proc, proc.returncode)
    assert line.startswith("agent-dispatch: "), line
    assert "database" in line.lower(), line


# -- commands with state, in order, on a database of their own ---------------------------------


def test_db_upgrade_migrates_an_empty_database_and_prints_the_revision(
    pg_factory: DatabaseFactory, prefect_home: Path
) -> None:
    name = f"ad_empty_{uuid.uuid4().hex[:12]}"
    admin = pg_factory.admin
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = with_db(admin, name)
    try:
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert head is not None
        shown_url = normalize_database_url(url)
        expected = f"database at revision {head} ({shown_url})\n"

        assert assert_ok(cli(("db", "upgrade"), prefect_home, DATABASE_URL=url)) == expected
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
            }
        assert {"agents", "jobs", "job_distributions", "job_distribution_agents"} <= tables
        # Running it again is a no-op with the same answer.
        assert assert_ok(cli(("db", "upgrade"), prefect_home, DATABASE_URL=url)) == expected
    finally:
        pg_factory.drop(url)


def test_agents_add_list_remove(database_url: str, prefect_home: Path) -> None:
    env = {"DATABASE_URL": database_url, "AGENT_ALLOW_PRIVATE_NETWORKS": "true"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(args, prefect_home, **env)

    add = (
        "agents", "add", "alpha", "http://127.0.0.1:9/",
        "--category", "text", "--category", "code", "--category", "text",
        "--tag", "en", "--skill-level", "3", "--max-concurrency", "2",
    )  # fmt: skip
    assert assert_ok(run(*add)) == "added agent alpha (http://127.0.0.1:9/)\n"

    table = assert_ok(run("agents", "list")).splitlines()
    assert len(table) == 3, table
    assert table[0].split() == [
        "NAME", "CATEGORIES", "TAGS", "SKILL", "MAX", "HEALTH", "SUCCESS", "WINS", "AVG", "MS",
        "URL",
    ]  # fmt: skip
    assert set(table[1]) <= {"-", " "}
    assert table[2].split() == ["alpha", "code,text", "en", "3", "2", "?", "-", "0", "-",
                                "http://127.0.0.1:9"]  # fmt: skip

    (listed,) = json.loads(assert_ok(run("agents", "list", "--json")))
    agent_id = listed.pop("id")
    assert str(uuid.UUID(agent_id)) == agent_id
    assert listed == {
        "name": "alpha",
        "url": "http://127.0.0.1:9",
        "protocol": "http-json",
        "categories": ["code", "text"],
        "tags": ["en"],
        "skillLevel": 3,
        "maxConcurrency": 2,
        "active": True,
        "healthy": None,
        "runs": 0,
        "successes": 0,
        "failures": 0,
        "wins": 0,
        "cancelled": 0,
        "successRate": None,
        "reputation": 0.5,
        "avgLatencyMs": None,
        "circuitOpenUntil": None,
    }
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT id, name, skill_level, max_concurrency FROM agents").fetchall()
    assert row == [(agent_id, "alpha", 3, 2)]

    updated = run("agents", "update", "alpha", "--no-active", "--max-concurrency", "4")
    assert assert_ok(updated) == (
        "updated agent alpha: inactive, categories code,text, tags en, skill 3, max 4\n"
    )
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT active, max_concurrency FROM agents").fetchall()
    assert row == [(False, 4)]

    duplicate = run("agents", "add", "alpha", "http://127.0.0.1:10/", "--category", "text")
    line = assert_one_line_error(duplicate, 1)
    assert line == "agent-dispatch: an agent named 'alpha' already exists"

    line = assert_one_line_error(run("agents", "remove", "nope"), 1)
    assert line == "agent-dispatch: no agent named 'nope'"

    assert assert_ok(run("agents", "remove", "alpha")) == "removed agent alpha\n"
    assert json.loads(assert_ok(run("agents", "list", "--json"))) == []


# -- the background `run` ------------------------------------------------------------------------


def test_run_with_queue_down_exits_nonzero_with_a_one_line_reason(
    queue_down_run: Background,
) -> None:
    proc = queue_down_run.wait(timeout=90)
    assert proc.returncode == 1, shown(proc)
    # Prefect's own run log shares stderr; the CLI's reason is exactly one line of it.
    ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("agent-dispatch:")]
    assert len(ours) == 1, shown(proc)
    reason = ours[0]
    assert re.fullmatch(r"agent-dispatch: remote queue: .*connect.*", reason, re.I), shown(proc)
    assert "Traceback" not in proc.stderr, shown(proc)
    assert proc.stdout.startswith("dispatch run: 0 taken"), shown(proc)
