"""`python -m agent_dispatch.simulators`: both simulators in their own process, for chaos runs."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.behaviours import Behaviour, parse_behaviour
from agent_dispatch.simulators.queue import SimulatedQueue


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _agents(text: str) -> dict[str, Behaviour]:
    """ "fast1=fast,slow1=slow:delay=5" -> {"fast1": <fast>, "slow1": <slow, delay 5>}."""
    agents: dict[str, Behaviour] = {}
    for part in _csv(text):
        name, sep, spec = part.partition("=")
        if not sep or not name or not spec:
            raise argparse.ArgumentTypeError(f"expected name=behaviour, got {part!r}")
        try:
            agents[name] = parse_behaviour(spec)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(f"{part!r}: {exc}") from exc
    return agents


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent_dispatch.simulators", description=__doc__)
    p.add_argument("--queue-port", type=int, default=0, help="0: any free port")
    p.add_argument("--agents-port", type=int, default=0, help="0: any free port")
    p.add_argument("--token", default="sim-token", help="the queue's bearer token")
    p.add_argument("--agent-token", default=None, help="bearer token every agent requires")
    p.add_argument("--jobs", type=int, default=0, help="open tasks to seed")
    p.add_argument(
        "--agents", type=_agents, default={}, help='e.g. "fast1=fast,slow1=slow:delay=5"'
    )
    p.add_argument("--categories", type=_csv, default=["general"], help="cycled over the jobs")
    p.add_argument("--tags", type=_csv, default=[], help="one per job, cycled")
    p.add_argument("--skill-levels", type=lambda s: [int(x) for x in _csv(s)], default=[1])
    p.add_argument("--timeout-ms", type=int, default=None, help="timeoutMs of every job")
    p.add_argument("--max-agents", type=int, default=None, help="maxAgents of every job")
    return p


def seed(queue: SimulatedQueue, args: argparse.Namespace) -> None:
    for i in range(args.jobs):
        fields: dict[str, Any] = {
            "title": f"Job {i + 1}",
            "category": args.categories[i % len(args.categories)],
            "tags": [args.tags[i % len(args.tags)]] if args.tags else [],
            "skillLevel": args.skill_levels[i % len(args.skill_levels)],
            "payload": {"n": i + 1},
        }
        if args.timeout_ms is not None:
            fields["timeoutMs"] = args.timeout_ms
        if args.max_agents is not None:
            fields["maxAgents"] = args.max_agents
        queue.add_task(**fields)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    queue = SimulatedQueue(args.token)
    farm = AgentFarm()
    for name, chosen in args.agents.items():
        farm.add(name, chosen, token=args.agent_token)
    seed(queue, args)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with queue.serve(args.queue_port) as q, farm.serve(args.agents_port) as f:
        agents = {name: farm.url_for(name) for name in farm.names}
        print(json.dumps({"queue_url": q.url, "farm_url": f.url, "agents": agents}), flush=True)
        # A timed wait keeps the main thread responsive to signals.
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
