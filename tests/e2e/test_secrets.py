"""Canary secrets: the queue token and an agent token, really used by runs, sweeps and health
probes, must appear in no CLI output, log, database row, Prefect log, artifact, event, flow
run (parameters, job variables) or task run, whether they come from the environment or from
Prefect Secret blocks."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client

from agent_dispatch.bootstrap import Runtime, set_runtime
from agent_dispatch.cli.main import main
from agent_dispatch.db.models import Agent
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import make_settings

pytestmark = [pytest.mark.flow]
QUEUE_CANARY = "canaryQ" + secrets.token_hex(10)
AGENT_CANARY = "canaryA" + secrets.token_hex(10)
CANARIES = (QUEUE_CANARY, AGENT_CANARY)


World = tuple[Runtime, SimulatedQueue, AgentFarm]
AGENTS = [
    ("good", "fast:delay=0.05", "farm"),
    ("broken", "error500", "farm"),
    ("refuses", "fast", "bad"),
]


@pytest.fixture(params=["environment", "secret blocks"])
def world(
    request: pytest.FixtureRequest, database_url: str, prefect_harness: None
) -> Iterator[World]:
    """The canaries in the environment's settings, or only in Prefect Secret blocks (then the
    queue token is REMOTE_QUEUE_TOKEN_SECRET's block, and the `farm` agents are registered
    with `agents add --token-secret`)."""
    queue, farm = SimulatedQueue(QUEUE_CANARY), AgentFarm()
    blocks = request.param == "secret blocks"
    with queue.serve() as q, farm.serve():
        tokens: dict[str, Any] = {"remote_queue_token": QUEUE_CANARY}
        if blocks:
            suffix = secrets.token_hex(4)
            queue_block, agent_block = f"canary-queue-{suffix}", f"canary-agent-{suffix}"
            Secret(value=QUEUE_CANARY).save(queue_block, overwrite=True)
            Secret(value=AGENT_CANARY).save(agent_block, overwrite=True)
            tokens = {"remote_queue_token": "", "remote_queue_token_secret": queue_block}
        rt = Runtime(
            make_settings(
                database_url,
                remote_queue_url=q.url,
                agent_tokens={"bad": "wrong-token"} | ({} if blocks else {"farm": AGENT_CANARY}),
                execution_retry_count=0,
                **tokens,
            )
        )
        previous = set_runtime(rt)
        for name, behaviour, ref in AGENTS:
            farm.add(name, behaviour, token=AGENT_CANARY)
            if blocks and ref == "farm":
                args = ["agents", "add", name, farm.url_for(name), "--category", "general"]
                args += ["--skill-level", "3", "--max-concurrency", "5"]
                assert main([*args, "--token-secret", agent_block]) == 0
                continue
            with rt.uow() as uow:
                uow.agents.add(
                    Agent(
                        name=name,
                        url=farm.url_for(name),
                        categories=["general"],
                        skill_level=3,
                        max_concurrency=5,
                        token_ref=ref,
                    )
                )
                uow.commit()
        for i in range(3):
            queue.add_task(title=f"t{i}", category="general", maxAgents=3)
        yield rt, queue, farm
        rt.dispose()
        set_runtime(previous)


PAGE = 200
EVENTS_PAGE = 50  # the most the events endpoint serves per page


async def _every(read: Callable[..., Awaitable[list[Any]]]) -> list[Any]:
    """Every record a Prefect list endpoint has, page after page (not just the first page)."""
    found: list[Any] = []
    while True:
        page = await read(limit=PAGE, offset=len(found))
        found.extend(page)
        if len(page) < PAGE:
            return found


async def _every_event(client: Any) -> list[str]:
    bodies = []
    answer = await client._client.post("/events/filter", json={"limit": EVENTS_PAGE})
    while True:
        answer.raise_for_status()
        bodies.append(answer.text)
        next_page = answer.json().get("next_page")
        if not next_page:
            return bodies
        answer = await client._client.get(next_page)


async def _prefect_records() -> dict[str, str]:
    async with get_client() as client:
        logs = await _every(client.read_logs)
        artifacts = await _every(client.read_artifacts)
        flow_runs = await _every(client.read_flow_runs)
        task_runs = await _every(client.read_task_runs)
        events = await _every_event(client)
    return {
        "logs": json.dumps([log.message for log in logs]),
        "artifacts": json.dumps([a.model_dump(mode="json") for a in artifacts]),
        "flow runs": json.dumps([r.model_dump(mode="json") for r in flow_runs]),
        "task runs": json.dumps([r.model_dump(mode="json") for r in task_runs]),
        "events": "\n".join(events),
    }


@pytest.fixture
def prefect_debug_logs() -> Iterator[None]:
    """Run logs at DEBUG for this test: a secret logged at INFO or DEBUG must be caught too."""
    changed = []
    for name in ["prefect", *logging.root.manager.loggerDict]:
        if name == "prefect" or name.startswith("prefect."):
            logger = logging.getLogger(name)
            changed.append((logger, logger.level))
            logger.setLevel(logging.DEBUG)
            for handler in logger.handlers:
                changed.append((handler, handler.level))
                handler.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for thing, level in changed:
            thing.setLevel(level)


def _rows(rt: Runtime) -> str:
    with rt.engine.connect() as conn:
        tables = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
        return "\n".join(
            str(row[0])
            for t in tables
            for row in conn.exec_driver_sql(f'SELECT t::text FROM "{t}" t')
        )


def test_canary_tokens_are_used_but_never_written_anywhere(
    world: World,
    prefect_debug_logs: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt, queue, farm = world
    caplog.set_level(logging.DEBUG)
    codes = [
        main(args)
        for args in (
            ["run"],
            ["sweep", "--settle-seconds", "0"],
            ["health"],
            ["jobs", "list", "--json"],
            ["agents", "list", "--json"],
        )
    ]
    queue.set_token("another-token")  # now the queue refuses ours: the error must not echo it
    codes.append(main(["run"]))
    out = capsys.readouterr()
    places: dict[str, Any] = {
        "stdout": out.out,
        "stderr": out.err,
        "log records": caplog.text,
        "database rows": _rows(rt),
        "settings repr": repr(rt.settings),
    }
    places |= asyncio.run(_prefect_records())

    # The canaries were really in use: the queue and the good agent accepted them.
    assert codes == [0, 0, 0, 0, 0, 1], out.err[-3000:]
    assert "401" in out.err
    assert queue.counts()["COMPLETED"] == 3
    assert any(c.agent == "good" and c.authorization for c in farm.calls)
    assert "answered 401" in places["logs"]  # Prefect logs were read back
    leaks = [(where, c[:7]) for where, text in places.items() for c in CANARIES if c in text]
    assert leaks == []
