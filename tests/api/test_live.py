"""The live feed: every change-log row reaches connected clients, in order, across processes;
a client that drops and comes back with `after` misses nothing; filters; access."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL
from sqlalchemy import create_engine
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.change_log import read_after, record_agent, record_job
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.api.conftest import QUEUE_TOKEN, Served
from tests.api.wsclient import Feed

CLI = str(Path(sys.executable).with_name("agent-dispatch"))
JOB_ORDER = ["OPEN", "DISTRIBUTED", "IN_PROGRESS", "COMPLETED"]


def change_log(rt: Runtime) -> list[dict[str, Any]]:
    with rt.uow() as uow:
        return [c.as_json() for c in read_after(uow.session, 0, 100_000)]


def essence(changes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(c["id"], c["kind"], c["queueTaskId"], c["agent"], c["status"]) for c in changes]


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    shutil.copy(sqlite_template, tmp_path / "api.db")
    return f"sqlite:///{tmp_path / 'api.db'}"


@pytest.mark.postgres
@pytest.mark.flow
@pytest.mark.slow
async def test_every_change_of_a_run_in_another_process_reaches_clients_in_order(
    api: Served,
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    database_url: str,
    prefect_harness: None,
) -> None:
    add_agent(api.rt, "quick", "fast:delay=0.05")
    add_agent(api.rt, "steady", "fast:delay=0.4")
    tasks = [queue.add_task(title=f"job {i}") for i in range(10)]
    env = {**os.environ, "DATABASE_URL": database_url, "REMOTE_QUEUE_URL": queue.url,
           "REMOTE_QUEUE_TOKEN": QUEUE_TOKEN, "AGENT_ALLOW_PRIVATE_NETWORKS": "true",
           "WORKER_NAME": "other-process", "JOB_CONCURRENCY": "4",
           "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PREFECT_LOGGING_LEVEL": "ERROR"}  # fmt: skip

    async with Feed(api.ws_url, api.token) as whole, Feed(api.ws_url, api.token) as dropping:
        run = await asyncio.create_subprocess_exec(
            CLI, "run", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        await dropping.read(count=15, timeout=120)  # then it goes away mid-run ...
        first_part = list(dropping.changes)
        await dropping.ws.close()
        await asyncio.sleep(1.0)  # ... and misses some changes
        async with Feed(api.ws_url, api.token, after=first_part[-1]["id"]) as back:
            output, _ = await asyncio.wait_for(run.communicate(), 300)
            assert run.returncode == 0, output.decode()[-3000:]
            logged = change_log(api.rt)
            last = logged[-1]["id"]
            await whole.read(until_id=last)
            await back.read(until_id=last)

    assert len(logged) > 10 * len(JOB_ORDER)  # job moves and every agent's moves
    assert essence(whole.changes) == essence(logged)  # all of them, in change-log order
    assert essence(first_part + back.changes) == essence(logged)  # nothing missed, no repeat
    for task in tasks:
        moves = [c["status"] for c in whole.changes
                 if c["kind"] == "job" and c["queueTaskId"] == task["id"]]  # fmt: skip
        assert moves == JOB_ORDER, (task["id"], moves)
    ended = [c for c in whole.changes if c["kind"] == "job" and c["status"] == "COMPLETED"]
    assert {c["detail"]["winner"] for c in ended} <= {"quick", "steady"}
    assert all(c["detail"]["winnerLatencyMs"] > 0 for c in ended)


async def test_filters_and_replay_on_sqlite_polling(
    serve: Callable[..., Served], sqlite_url: str
) -> None:
    api = serve(url=sqlite_url)
    async with (
        Feed(api.ws_url, api.token, kind="job") as jobs_only,
        Feed(api.ws_url, api.token, job="t2") as one_job,
        Feed(api.ws_url, api.token, agent="alpha") as one_agent,
    ):
        with api.rt.uow() as uow:
            for n in (1, 2):
                record_job(uow.session, f"j{n}", f"t{n}", "DISTRIBUTED", {})
                record_agent(uow.session, f"j{n}", f"t{n}", "a1", "alpha", "ASSIGNED")
                record_agent(uow.session, f"j{n}", f"t{n}", "b1", "beta", "ASSIGNED")
            uow.commit()
        await jobs_only.read(count=2)
        await one_job.read(count=3)
        await one_agent.read(count=2)
        async with Feed(api.ws_url, api.token, after=0, agent="beta") as replayed:
            await replayed.read(count=2)

    assert [c["queueTaskId"] for c in jobs_only.changes] == ["t1", "t2"]
    assert {c["kind"] for c in jobs_only.changes} == {"job"}
    assert [(c["queueTaskId"], c["agent"]) for c in one_job.changes] == [
        ("t2", None), ("t2", "alpha"), ("t2", "beta")]  # fmt: skip
    assert [(c["queueTaskId"], c["agent"]) for c in one_agent.changes] == [
        ("t1", "alpha"), ("t2", "alpha")]  # fmt: skip
    assert [(c["queueTaskId"], c["agent"]) for c in replayed.changes] == [
        ("t1", "beta"), ("t2", "beta")]  # fmt: skip


async def test_a_replay_from_before_the_kept_rows_says_there_is_a_gap(
    serve: Callable[..., Served], sqlite_url: str
) -> None:
    api = serve(url=sqlite_url, change_log_keep=100)
    for batch in range(6):  # 600 changes: the log keeps about the newest 100
        with api.rt.uow() as uow:
            for i in range(100):
                record_job(uow.session, "j", f"t{batch}-{i}", "OPEN", {})
            uow.commit()
    kept = change_log(api.rt)
    assert 100 <= len(kept) < 600 and kept[-1]["id"] == 600
    async with Feed(api.ws_url, api.token, after=3) as late:
        await late.read(until_id=600)
    assert late.notes[1] == {"kind": "gap", "after": 3, "oldest": kept[0]["id"]}
    assert essence(late.changes) == essence(kept)


@pytest.mark.postgres
async def test_the_feed_needs_the_token_as_header_or_query(api: Served) -> None:
    with pytest.raises(InvalidStatus) as missing:
        async with Feed(api.ws_url, None):
            pass
    assert missing.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as wrong:
        async with Feed(api.ws_url, "wrong"):
            pass
    assert wrong.value.response.status_code == 403
    async with Feed(api.ws_url, None, token=api.token) as ok:
        assert ok.notes[0]["kind"] == "hello"
    with pytest.raises(InvalidStatus) as bad:
        async with Feed(api.ws_url, api.token, kind="everything"):
            pass
    assert bad.value.response.status_code == 422


async def test_a_client_too_far_behind_is_closed_and_catches_up_with_after(
    serve: Callable[..., Served], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agent_dispatch.api.live.CLIENT_BACKLOG", 2)
    api = serve(url=sqlite_url)
    async with Feed(api.ws_url, api.token) as slow:
        with api.rt.uow() as uow:
            for i in range(50):  # one commit: 50 changes offered at once to a 2-change backlog
                record_job(uow.session, "j", f"t{i}", "OPEN", {})
            uow.commit()
        with pytest.raises(ConnectionClosed) as closed:
            await slow.read(count=50, timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        first = list(slow.changes)
    assert 0 < len(first) < 50
    async with Feed(api.ws_url, api.token, after=first[-1]["id"]) as back:
        await back.read(until_id=50)
    assert [c["queueTaskId"] for c in first + back.changes] == [f"t{i}" for i in range(50)]
