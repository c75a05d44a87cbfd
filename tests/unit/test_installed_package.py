"""The installed package works on its own: outside the repository (no checkout on sys.path),
`agent-dispatch db upgrade` runs every migration. A migration or module that imports a
top-level `db`/`domain` name passes inside pytest (which puts the repository on sys.path) and
fails for a worker that only has the package; this catches it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_db_upgrade_runs_every_migration_from_outside_the_repository(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'fresh.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "agent_dispatch.cli.main", "db", "upgrade"],
        cwd=tmp_path,  # not the checkout: only the installed package is importable
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "database at revision" in done.stdout
