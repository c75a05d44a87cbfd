"""Where a benchmark's CPU went, by process: this one, its children by role, PostgreSQL.

On a 2-core machine the dispatcher, the Prefect server, PostgreSQL and the simulators share
the cores, so a span at 20 jobs at once follows their CPU added up. Reading each one's
counters from /proc around a batch tells which of them a mode makes work harder.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping

TICK = os.sysconf("SC_CLK_TCK")
ROLES = ("dispatcher", "prefect server", "postgres", "sims")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields after "pid (comm) "


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _seconds(fields: list[str], with_reaped: bool) -> float:
    """utime + stime (+ cutime + cstime: the children it reaped), in seconds."""
    return sum(int(fields[i]) for i in ((11, 12, 13, 14) if with_reaped else (11, 12))) / TICK


def _role(cmd: str, parent: int, me: int) -> str | None:
    if "postgres" in cmd.split(" ")[0]:  # the postmaster, or a backend ("postgres: ...")
        return "postgres"
    if parent == me:  # a child of this benchmark
        return "prefect server" if ("uvicorn" in cmd or "prefect" in cmd) else "sims"
    return None


def snapshot() -> dict[str, float]:
    """CPU seconds used so far, by role (postgres: the postmaster and every backend)."""
    me = os.getpid()
    own = resource.getrusage(resource.RUSAGE_SELF)
    used = dict.fromkeys(ROLES, 0.0)
    used["dispatcher"] = own.ru_utime + own.ru_stime
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        fields = _stat(int(entry))
        role = _role(_cmdline(int(entry)), int(fields[1]), me) if fields else None
        if role and fields:
            # The postmaster's reaped children are its exited backends; a live backend's
            # own time is its own. Other roles' reaped children are not theirs to count.
            used[role] += _seconds(fields, with_reaped=role == "postgres")
    return used


def per_job_ms(
    before: Mapping[str, float], after: Mapping[str, float], jobs: int
) -> dict[str, float]:
    return {role: (after[role] - before[role]) * 1000 / jobs for role in ROLES}


def settle(role: str = "prefect server", busy_below: float = 0.05, limit_s: float = 180.0) -> float:
    """Wait until `role` has used under `busy_below` of a core for a second; seconds waited.

    The Prefect server stores a batch's events and task runs behind the batch: measured next,
    another mode would be charged with that work, and this one spared it."""
    if limit_s <= 0:
        return 0.0
    started = last_at = time.monotonic()
    last = snapshot()[role]
    while time.monotonic() - started < limit_s:
        time.sleep(1.0)
        now, used = time.monotonic(), snapshot()[role]
        if (used - last) / (now - last_at) < busy_below:
            break
        last, last_at = used, now
    return time.monotonic() - started
