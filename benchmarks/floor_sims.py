"""The loopback queue and agents of the dispatch-floor benchmark, in a process of their own.

The simulators answer in threads of whatever process serves them; inside the measured process
they would compete for its GIL and charge their own work to the dispatcher under test. Here
they run in a child process that takes commands on stdin (one JSON line answers each):

    add N   -> {"ids": [...]}  N new OPEN tasks
    dump    -> {"patches": [[task_id, status, at], ...], "calls": [[agent, path, job_id, at]]}

`at` is time.monotonic(), a system-wide clock on Linux: comparable with the parent's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue

TOKEN = "floor-token"
# The agents of the issue: every job calls all three, the 50 ms one answers first.
DELAYS_S = {"a50": 0.05, "a100": 0.1, "a200": 0.2}


class Sims:
    """The parent's handle on the simulator process."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc
        first = self._answer()
        self.queue_url: str = first["queue_url"]
        self.agent_urls: dict[str, str] = first["agents"]

    def _answer(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, command: str) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._answer()

    def add(self, n: int) -> list[str]:
        ids: list[str] = self._ask(f"add {n}")["ids"]
        return ids

    def dump(self) -> dict[str, Any]:
        return self._ask("dump")


@contextmanager
def running_sims() -> Iterator[Sims]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor_sims"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],  # where `benchmarks` is importable
    )
    try:
        yield Sims(proc)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the child ends at end of input
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve() -> None:
    queue = SimulatedQueue(TOKEN)
    farm = AgentFarm({name: f"fast:delay={d}" for name, d in DELAYS_S.items()})
    with queue.serve() as q, farm.serve():
        agents = {name: farm.url_for(name) for name in farm.names}
        print(json.dumps({"queue_url": q.url, "agents": agents}), flush=True)
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "add":
                ids = [
                    queue.add_task(title="floor job", category="general")["id"]
                    for _ in range(int(arg))
                ]
                answer: dict[str, Any] = {"ids": ids}
            elif command == "dump":
                answer = {
                    "patches": [
                        [p.task_id, (p.body or {}).get("status"), p.at]
                        for p in queue.patches
                        if p.status_code < 300
                    ],
                    "calls": [[c.agent, c.path, c.job_id, c.at] for c in farm.calls],
                }
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _serve()
