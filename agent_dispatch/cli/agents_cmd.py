"""`agent-dispatch agents add|update|list|remove`."""

from __future__ import annotations

import argparse
import asyncio

from agent_dispatch.cli.base import CLIError, emit_json, positive_int, runtime, skill, table
from agent_dispatch.clients.protocols import A2A, PROTOCOLS
from agent_dispatch.services.agents import (
    AgentView,
    list_agents,
    register_agent,
    remove_agent,
    update_agent,
)
from agent_dispatch.services.deps import block_ref


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
    token = add.add_mutually_exclusive_group()
    token.add_argument("--token-ref", default=None, help="name of its token in AGENT_TOKENS")
    token.add_argument(
        "--token-secret",
        default=None,
        metavar="BLOCK",
        help="name of the Prefect Secret block holding its token (read when it is called)",
    )
    add.set_defaults(handler=cmd_add)
    up = asub.add_parser("update", help="change an agent's profile, or take it out of matching")
    up.add_argument("name")
    up.add_argument(
        "--active",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--no-active keeps it out of matching (its history and statistics stay)",
    )
    up.add_argument("--category", action="append", default=None, dest="categories")
    up.add_argument("--tag", action="append", default=None, dest="tags")
    up.add_argument("--skill-level", type=skill, default=None)
    up.add_argument("--max-concurrency", type=positive_int, default=None)
    up.set_defaults(handler=cmd_update)
    ls = asub.add_parser("list", help="list agents with health and statistics")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
    rm = asub.add_parser("remove", help="remove an agent (its history stays)")
    rm.add_argument("name")
    rm.set_defaults(handler=cmd_remove)


def cmd_add(args: argparse.Namespace) -> int:
    # Said in the option's own words; the service checks it too. An A2A agent's categories
    # may come from its card's skills instead.
    if not args.categories and args.protocol != A2A:
        raise CLIError("give at least one --category the agent can work on")
    rt = runtime()

    async def add() -> AgentView:
        try:
            return await register_agent(
                rt,
                args.name,
                args.url,
                categories=args.categories,
                tags=args.tags,
                protocol=args.protocol,
                skill_level=args.skill_level,
                max_concurrency=args.max_concurrency,
                token_ref=block_ref(args.token_secret) if args.token_secret else args.token_ref,
            )
        finally:
            await rt.aclose_clients()  # an A2A card was read with this loop's client

    registered = asyncio.run(add())
    print(f"added agent {registered.name} ({args.url})")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    changed = asyncio.run(
        update_agent(
            runtime(),
            args.name,
            active=args.active,
            categories=args.categories,
            tags=args.tags,
            skill_level=args.skill_level,
            max_concurrency=args.max_concurrency,
        )
    )
    state = "active" if changed.active else "inactive"
    print(
        f"updated agent {changed.name}: {state}, categories {','.join(changed.categories)}, "
        f"tags {','.join(changed.tags) or '-'}, skill {changed.skill_level}, "
        f"max {changed.max_concurrency}"
    )
    return 0


def agent_dict(a: AgentView) -> dict[str, object]:
    return {
        "id": a.id,
        "name": a.name,
        "url": a.url,
        "protocol": a.protocol,
        "categories": list(a.categories),
        "tags": list(a.tags),
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
    agents = asyncio.run(list_agents(runtime()))
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
    asyncio.run(remove_agent(runtime(), args.name))
    print(f"removed agent {args.name}")
    return 0
