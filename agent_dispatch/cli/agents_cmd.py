"""`agent-dispatch agents add|list|remove`."""

from __future__ import annotations

import argparse

from agent_dispatch.cli.base import CLIError, emit_json, positive_int, runtime, skill, table
from agent_dispatch.db.agent_repository import DuplicateAgent
from agent_dispatch.db.models import Agent
from agent_dispatch.domain.netpolicy import UnsafeAddress, check_url_shape

PROTOCOLS = ("http-json", "a2a")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agents", help="register and list agents")
    asub = p.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    add = asub.add_parser("add", help="register an agent")
    add.add_argument("name")
    add.add_argument("url")
    add.add_argument("--protocol", default="http-json", choices=PROTOCOLS)
    add.add_argument("--category", action="append", default=[], dest="categories")
    add.add_argument("--tag", action="append", default=[], dest="tags")
    add.add_argument("--skill-level", type=skill, default=1)
    add.add_argument("--max-concurrency", type=positive_int, default=1)
    add.add_argument("--token-ref", default=None, help="name of its token in AGENT_TOKENS")
    add.set_defaults(handler=cmd_add)
    ls = asub.add_parser("list", help="list agents with health and statistics")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
    rm = asub.add_parser("remove", help="remove an agent (its history stays)")
    rm.add_argument("name")
    rm.set_defaults(handler=cmd_remove)


def cmd_add(args: argparse.Namespace) -> int:
    rt = runtime()
    if not args.categories:
        raise CLIError("give at least one --category the agent can work on")
    try:
        check_url_shape(args.url)
        if not rt.settings.agent_allow_private_networks:
            from agent_dispatch.clients.netguard import check_url

            check_url(args.url)
    except UnsafeAddress as exc:
        raise CLIError(f"agent URL refused: {exc}") from None
    if args.token_ref and args.token_ref not in rt.settings.agent_tokens:
        raise CLIError(f"--token-ref {args.token_ref!r} is not a key of AGENT_TOKENS")
    with rt.uow() as uow:
        try:
            uow.agents.add(
                Agent(
                    name=args.name,
                    url=args.url.rstrip("/"),
                    protocol=args.protocol,
                    categories=sorted(set(args.categories)),
                    tags=sorted(set(args.tags)),
                    skill_level=args.skill_level,
                    max_concurrency=args.max_concurrency,
                    token_ref=args.token_ref,
                )
            )
        except DuplicateAgent as exc:
            raise CLIError(str(exc)) from None
        uow.commit()
    print(f"added agent {args.name} ({args.url})")
    return 0


def agent_dict(a: Agent) -> dict[str, object]:
    return {
        "id": a.id,
        "name": a.name,
        "url": a.url,
        "protocol": a.protocol,
        "categories": a.categories,
        "tags": a.tags,
        "skillLevel": a.skill_level,
        "maxConcurrency": a.max_concurrency,
        "active": a.active,
        "healthy": a.healthy,
        "runs": a.runs,
        "successes": a.successes,
        "failures": a.failures,
        "wins": a.wins,
        "cancelled": a.cancelled,
        "successRate": a.success_rate,
        "reputation": a.reputation,
        "avgLatencyMs": a.avg_latency_ms,
        "circuitOpenUntil": a.circuit_open_until,
    }


def cmd_list(args: argparse.Namespace) -> int:
    with runtime().uow() as uow:
        agents = list(uow.agents.list())
        if args.json:
            emit_json([agent_dict(a) for a in agents])
            return 0
        if not agents:
            print("no agents registered; add one with:")
            print("  agent-dispatch agents add NAME URL --category C")
            return 0
        rows = [
            [
                a.name,
                ",".join(a.categories),
                ",".join(a.tags) or "-",
                str(a.skill_level),
                str(a.max_concurrency),
                {True: "ok", False: "DOWN", None: "?"}[a.healthy],
                f"{a.success_rate:.0%}" if a.success_rate is not None else "-",
                str(a.wins),
                f"{a.avg_latency_ms:.0f}" if a.avg_latency_ms is not None else "-",
                a.url,
            ]
            for a in agents
        ]
        print(
            table(
                rows,
                [
                    "NAME",
                    "CATEGORIES",
                    "TAGS",
                    "SKILL",
                    "MAX",
                    "HEALTH",
                    "SUCCESS",
                    "WINS",
                    "AVG MS",
                    "URL",
                ],
            )
        )
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with runtime().uow() as uow:
        if not uow.agents.remove(args.name):
            raise CLIError(f"no agent named {args.name!r}")
        uow.commit()
    print(f"removed agent {args.name}")
    return 0
