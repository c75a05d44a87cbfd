"""Sweep and health runs that cannot work (database down, queue out of reach) end Failed with
one line naming the outage, their summary as the state's data; nothing is lost meanwhile."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from prefect.client.schemas.objects import State, StateType

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.cli.main import main
from agent_dispatch.flows.health import HealthSummary, health_flow
from agent_dispatch.flows.sweep import SweepParams, SweepSummary, sweep_flow
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import QUEUE_TOKEN, make_settings
from tests.support.reliability import age_lease, claim, job, store
from tests.support.runtimes import installed

pytestmark = [pytest.mark.flow, pytest.mark.postgres]

NOWHERE_DB = "postgresql://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
NOWHERE_QUEUE = "http://127.0.0.1:1"


@pytest.fixture
def no_database(queue: SimulatedQueue, prefect_harness: None) -> Iterator[Runtime]:
    settings = make_settings(NOWHERE_DB, remote_queue_url=queue.url, remote_queue_token=QUEUE_TOKEN)
    with installed(Runtime(settings)) as rt:
        yield rt


def failed_message(state: State[object]) -> str:
    assert state.type == StateType.FAILED
    message = state.message or ""
    assert "\n" not in message and "Traceback" not in message
    return message


async def test_a_sweep_without_its_database_ends_failed_naming_the_database(
    no_database: Runtime,
) -> None:
    state = await sweep_flow(return_state=True)

    message = failed_message(state)
    assert message.startswith("database: ") and "127.0.0.1" in message
    summary = await state.aresult(raise_on_failure=False)
    assert isinstance(summary, SweepSummary) and summary.stopped_reason == message


async def test_a_sweep_that_cannot_reach_the_queue_ends_failed_and_the_job_waits(
    make_runtime: Callable[..., Runtime], queue: SimulatedQueue
) -> None:
    rt = make_runtime(remote_queue_url=NOWHERE_QUEUE, execution_retry_count=0)
    qid = queue.add_task(title="t", category="general")["id"]
    job_id = store(rt, qid)
    claim(rt, qid, "dead-worker")
    age_lease(rt, job_id)

    state = await sweep_flow(SweepParams(settle_seconds=0), return_state=True)

    message = failed_message(state)
    assert message.startswith("remote queue: 1 job(s) deferred; first: queue look-up failed")
    summary = await state.aresult(raise_on_failure=False)
    assert isinstance(summary, SweepSummary)
    assert [line["action"] for line in summary.lines] == ["deferred"]
    assert job(rt, job_id).status == "OPEN"  # the next sweep asks the queue again


async def test_a_health_check_without_its_database_ends_failed_naming_the_database(
    no_database: Runtime,
) -> None:
    state = await health_flow(return_state=True)

    message = failed_message(state)
    assert message.startswith("database: ") and "127.0.0.1" in message
    summary = await state.aresult(raise_on_failure=False)
    assert isinstance(summary, HealthSummary) and summary.stopped_reason == message


def test_the_sweep_command_prints_its_summary_then_the_outage_line(
    make_runtime: Callable[..., Runtime],
    queue: SimulatedQueue,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rt = make_runtime(remote_queue_url=NOWHERE_QUEUE, execution_retry_count=0)
    qid = queue.add_task(title="t", category="general")["id"]
    job_id = store(rt, qid)
    claim(rt, qid, "dead-worker")
    age_lease(rt, job_id)

    assert main(["sweep", "--settle-seconds", "0"]) != 0

    out, err = capsys.readouterr()
    assert "sweep: 1 deferred; stopped: remote queue: 1 job(s) deferred" in out
    assert f"{qid}" in out and job(rt, job_id).status == "OPEN"
    (line,) = [x for x in err.splitlines() if x.startswith("agent-dispatch:")]
    assert line.startswith("agent-dispatch: sweep stopped: remote queue: 1 job(s) deferred")
