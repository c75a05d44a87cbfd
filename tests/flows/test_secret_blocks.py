"""Tokens kept in Prefect Secret blocks on a real Prefect server: a run whose environment holds
no token works from the blocks alone, picks up a rotated queue token at once, and no agent
answer or report frame reaches a result store even when results persist by default."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from prefect.settings import (
    PREFECT_LOCAL_STORAGE_PATH,
    PREFECT_RESULTS_PERSIST_BY_DEFAULT,
    temporary_settings,
)

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.flows.analytics import AnalyticsParams, analytics_flow
from agent_dispatch.flows.dispatch import DispatchParams, dispatch_flow
from agent_dispatch.services.agents import register_agent
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue

pytestmark = [pytest.mark.flow, pytest.mark.postgres]


async def saved(value: str) -> str:
    """A Secret block on the test server holding `value`; returns its name."""
    name = f"tok-{uuid.uuid4().hex[:10]}"
    await Secret(value=value).asave(name, overwrite=True)
    return name


async def test_queue_and_agent_tokens_come_from_secret_blocks_alone_and_rotate(
    make_runtime: Callable[..., Runtime], queue: SimulatedQueue, farm: AgentFarm
) -> None:
    queue.set_token("queue-from-block")
    queue_block = await saved("queue-from-block")
    agent_block = await saved("agent-from-block")
    rt = make_runtime(
        remote_queue_token="",  # nothing in the environment
        remote_queue_token_secret=queue_block,
        secret_cache_seconds=3600,  # a rotation must not wait for the cache
    )
    farm.add("keyed", "fast:delay=0.05", token="agent-from-block")
    await register_agent(
        rt,
        "keyed",
        farm.url_for("keyed"),
        categories=["general"],
        token_ref=f"secret-block:{agent_block}",
    )
    first = queue.add_task(title="t1", category="general")

    summary = await dispatch_flow(DispatchParams())

    assert [(j.queue_task_id, j.outcome) for j in summary.jobs] == [(first["id"], "COMPLETED")]
    assert [c.authorization for c in farm.calls_for("keyed")] == [True]

    # An operator rotates the queue token: new value in the block, the queue takes only it.
    queue.set_token("rotated-queue-token")
    await Secret(value="rotated-queue-token").asave(queue_block, overwrite=True)
    second = queue.add_task(title="t2", category="general")
    again = await dispatch_flow(DispatchParams())

    assert [(j.queue_task_id, j.outcome) for j in again.jobs] == [(second["id"], "COMPLETED")]
    assert again.stopped_reason is None
    refused = [r for r in queue.requests if r.status_code == 401]
    assert len(refused) == 1  # the cached old token, once; then read fresh from the block


async def test_a_missing_queue_token_block_stops_the_run_naming_the_block(
    make_runtime: Callable[..., Runtime], queue: SimulatedQueue
) -> None:
    make_runtime(remote_queue_token="", remote_queue_token_secret="deleted-block")
    queue.add_task(title="t", category="general")

    state = await dispatch_flow(return_state=True)

    assert state.is_failed()
    assert state.message == (
        "remote queue: token unavailable: secret block 'deleted-block' not found on the "
        "Prefect server"
    )
    assert queue.requests == []  # nothing sent without a token


def stored_results(root: Path) -> list[bytes]:
    """Every result Prefect wrote under `root`, decoded as far as its serializer allows."""
    out = []
    for path in root.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            out.append(raw)
            try:
                record = json.loads(raw)
                out.append(base64.b64decode(record.get("result", "")))
            except (ValueError, AttributeError):
                pass
    return out


async def test_agent_answers_and_report_frames_never_reach_a_result_store(
    rt: Runtime,
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    tmp_path: Path,
) -> None:
    """Prefect 3.9 writes a task's result only under a cache key, so NO_CACHE tasks stay off
    disk anyway; persist_result=False says so explicitly. This catches any task that keeps a
    cache key and returns job data (e.g. fetch-open-tasks without both settings)."""
    marker = f"marker{uuid.uuid4().hex[:12]}"
    add_agent("a", "fast:delay=0.05")
    queue.add_task(title=marker, category="general", payload={"note": marker})  # answer echoes
    storage = tmp_path / "results"

    with temporary_settings(
        {PREFECT_RESULTS_PERSIST_BY_DEFAULT: True, PREFECT_LOCAL_STORAGE_PATH: storage}
    ):
        summary = await dispatch_flow(DispatchParams())
        analytics_flow(AnalyticsParams(out_dir=str(tmp_path / "report")))

    assert [j.outcome for j in summary.jobs] == ["COMPLETED"]
    results = stored_results(storage)
    assert results, "results were persisted by default (the flows' own summaries)"
    assert not [r for r in results if marker.encode() in r]
    assert not [r for r in results if b"pandas" in r]
