"""Workflow runs as plain services: SQLite, the loopback queue and agents, no Prefect."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.workflow_models import WorkflowRun
from agent_dispatch.services.cancel import cancel_job
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.behaviours import behaviour
from agent_dispatch.simulators.queue import SimulatedQueue
from agent_dispatch.tasks.sweep_tasks import rescue_expired, stop_abandoned
from tests.services import workflow_support as wf

Add = Callable[..., str]


def example_agents(add_agent: Add, verdict: str = "ok", translate: str = "fast") -> None:
    add_agent(
        "writer",
        behaviour("fast", delay=0.1, result="a draft"),
        categories=("writing",),
        tags=["draft"],
    )
    add_agent(
        "reviewer",
        behaviour("fast", delay=0.4, result={"verdict": verdict}),
        categories=("review",),
    )
    add_agent(
        "translator",
        behaviour(translate, delay=0.4, result="un brouillon"),
        categories=("translate",),
    )


async def test_the_example_runs_end_to_end_with_the_branches_overlapping_and_fix_skipped(
    deps: Runtime, queue: SimulatedQueue, add_agent: Add
) -> None:
    wf.register(deps)
    example_agents(add_agent, verdict="ok")
    task = queue.add_task(
        title="Cats", category="general", workflow="write-review-translate", payload={"brief": "c"}
    )
    [claim] = await wf.claim_all(deps)

    line = await wf.run(deps, claim)

    assert line.outcome == "COMPLETED", line.detail
    assert wf.statuses(deps, task["id"]) == {
        "draft": "COMPLETED",
        "review": "COMPLETED",
        "translate": "COMPLETED",
        "fix": "SKIPPED",
    }
    output = {"text": "a draft", "review": {"verdict": "ok"}, "fr": "un brouillon"}
    assert queue.task(task["id"])["status"] == "COMPLETED"
    assert queue.task(task["id"])["result"] == output
    assert wf.parent(deps, task["id"]).result == output
    # Only the parent was ever on the queue: taken, IN_PROGRESS at the first step, COMPLETED.
    assert wf.patched(queue) == {task["id"]: ["DISTRIBUTED", "IN_PROGRESS", "COMPLETED"]}
    s = wf.steps(deps, task["id"])
    review, translate = wf.span(deps, s["review"][0]), wf.span(deps, s["translate"][0])
    overlap = wf.overlap_seconds(review, translate)
    print(f"review and translate (0.4 s agents each) overlapped {overlap:.2f} s")
    # Each started before the other ended: they ran at the same time (how long they overlap
    # depends on the machine's load, so no figure is asserted).
    assert review[0] < translate[1] and translate[0] < review[1]
    assert s["draft"][0].payload == {"brief": "c"}
    assert s["review"][0].payload == {"text": "a draft"}
    assert s["review"][0].max_agents == 2 and s["review"][0].timeout_ms == 60000  # defaults
    assert "verdict" in (s["fix"][0].error or "")


async def test_a_review_asking_for_changes_runs_the_fix_whose_result_is_the_text(
    deps: Runtime, queue: SimulatedQueue, add_agent: Add
) -> None:
    wf.register(deps)
    example_agents(add_agent, verdict="changes")
    task = queue.add_task(title="Cats", category="general", workflow="write-review-translate")
    [claim] = await wf.claim_all(deps)

    assert (await wf.run(deps, claim)).outcome == "COMPLETED"

    assert wf.statuses(deps, task["id"])["fix"] == "COMPLETED"
    fix = wf.steps(deps, task["id"])["fix"][0]
    assert fix.payload == {"text": "a draft", "notes": {"verdict": "changes"}}
    assert queue.task(task["id"])["result"]["text"] == "a draft"  # the writer agent answered


async def test_a_failing_step_marked_continue_leaves_a_null_result_and_the_run_completes(
    deps: Runtime, queue: SimulatedQueue, add_agent: Add
) -> None:
    wf.register(deps)
    example_agents(add_agent, translate="failing")
    task = queue.add_task(title="Cats", category="general", workflow="write-review-translate")
    [claim] = await wf.claim_all(deps)

    assert (await wf.run(deps, claim)).outcome == "COMPLETED"

    assert wf.statuses(deps, task["id"])["translate"] == "FAILED"
    assert queue.task(task["id"])["result"]["fr"] is None


async def test_a_failing_step_fails_the_run_naming_it_and_its_running_sibling_is_cancelled(
    deps: Runtime, queue: SimulatedQueue, farm: AgentFarm, add_agent: Add
) -> None:
    wf.register(deps)
    add_agent("writer", "fast", categories=("writing",), tags=["draft"])
    # The review fails only after a second, so the translator's call is surely under way and
    # its agent has something to be told to stop.
    add_agent("reviewer", "failing:delay=1", categories=("review",))
    add_agent("translator", "slow:delay=20", categories=("translate",))
    task = queue.add_task(title="Cats", category="general", workflow="write-review-translate")
    [claim] = await wf.claim_all(deps)

    assert (await wf.run(deps, claim)).outcome == "FAILED"

    remote = queue.task(task["id"])
    assert remote["status"] == "FAILED"
    assert remote["error"].startswith("step 'review' failed: ")
    assert "reviewer: FAILED" in remote["error"]
    assert wf.statuses(deps, task["id"])["translate"] == "CANCELLED"
    assert "translator" in {c.agent for c in farm.cancels}


async def test_retry_runs_a_failed_step_again_and_the_second_try_wins(
    deps: Runtime, queue: SimulatedQueue, add_agent: Add
) -> None:
    # A seed whose first draw fails and second succeeds: the agent fails once, then answers.
    seed = next(
        s for s in range(1000) if (r := random.Random(s)).random() < 0.5 and r.random() >= 0.5
    )
    wf.register(deps, "name: once\nsteps:\n  - id: a\n    onFailure: retry:2\n")
    add_agent("moody", behaviour("flaky", probability=0.5, seed=seed, fail_as="failing"))
    task = queue.add_task(title="t", category="general", workflow="once")
    [claim] = await wf.claim_all(deps)

    assert (await wf.run(deps, claim)).outcome == "COMPLETED"

    tries = wf.steps(deps, task["id"])["a"]
    assert [(t.step_try, t.status) for t in tries] == [(1, "FAILED"), (2, "COMPLETED")]
    assert [t.queue_task_id for t in tries] == [f"{task['id']}/a", f"{task['id']}/a#2"]


async def test_retry_gives_up_after_its_tries_and_the_run_fails(
    deps: Runtime, queue: SimulatedQueue, farm: AgentFarm, add_agent: Add
) -> None:
    wf.register(deps, "name: stubborn\nsteps:\n  - id: a\n    onFailure: retry:2\n")
    add_agent("broken", "failing")
    task = queue.add_task(title="t", category="general", workflow="stubborn")
    [claim] = await wf.claim_all(deps)

    assert (await wf.run(deps, claim)).outcome == "FAILED"

    assert len(wf.steps(deps, task["id"])["a"]) == 3
    assert len(farm.calls_for("broken")) == 3


async def test_an_unknown_workflow_fails_the_task_on_the_queue_with_the_reason(
    deps: Runtime, queue: SimulatedQueue, farm: AgentFarm, add_agent: Add
) -> None:
    add_agent("any")
    task = queue.add_task(title="t", category="general", workflow="no-such-flow")
    [claim] = await wf.claim_all(deps)

    assert (await wf.run(deps, claim)).outcome == "FAILED"

    assert queue.task(task["id"])["status"] == "FAILED"
    assert queue.task(task["id"])["error"] == "unknown workflow 'no-such-flow'"
    assert farm.calls == []


async def test_a_step_no_agent_can_take_fails_with_the_match_summary(
    deps: Runtime, queue: SimulatedQueue, add_agent: Add
) -> None:
    wf.register(deps, "name: lonely\nsteps:\n  - id: a\n    category: legal\n")
    add_agent("coder", categories=("code",))
    task = queue.add_task(title="t", category="general", workflow="lonely")
    [claim] = await wf.claim_all(deps)

    assert (await wf.run(deps, claim)).outcome == "FAILED"

    error = queue.task(task["id"])["error"]
    assert error.startswith("step 'a' failed: no agent could take the step: ")
    assert "legal" in error


async def test_the_run_expires_at_its_expiry_and_stops_its_steps(
    deps: Runtime, queue: SimulatedQueue, farm: AgentFarm, add_agent: Add
) -> None:
    wf.register(deps, "name: slowly\nsteps:\n  - id: a\n")
    add_agent("sloth", "slow:delay=20")
    soon = utcnow() + dt.timedelta(seconds=1)
    task = queue.add_task(title="t", category="general", workflow="slowly", expires_at=soon)
    [claim] = await wf.claim_all(deps)

    line = await asyncio.wait_for(wf.run(deps, claim), 15)

    assert line.outcome == "EXPIRED"
    assert queue.task(task["id"])["status"] == "EXPIRED"
    assert wf.statuses(deps, task["id"])["a"] in ("EXPIRED", "CANCELLED")


async def test_cancelling_the_parent_mid_run_cancels_its_running_steps_and_their_agents(
    make_deps: Callable[..., Runtime], queue: SimulatedQueue, farm: AgentFarm, add_agent: Add
) -> None:
    deps = make_deps(remote_queue_url=queue.url, lease_check_seconds=0.05)
    wf.register(deps)
    add_agent("writer", "fast", categories=("writing",), tags=["draft"])
    add_agent("reviewer", "slow:delay=20", categories=("review",))
    add_agent("translator", "slow:delay=20", categories=("translate",))
    task = queue.add_task(title="Cats", category="general", workflow="write-review-translate")
    [claim] = await wf.claim_all(deps)
    running = asyncio.create_task(wf.run(deps, claim))
    while len({c.agent for c in farm.calls}) < 3:  # both branches are with their agents
        await asyncio.sleep(0.02)

    message = (await cancel_job(deps, task["id"])).message()
    line = await asyncio.wait_for(running, 10)

    assert "2 agent call(s) stopped" in message
    assert line.outcome == "LEASE_LOST"
    assert queue.task(task["id"])["status"] == "CANCELLED"
    assert wf.statuses(deps, task["id"]) == {
        "draft": "COMPLETED",
        "review": "CANCELLED",
        "translate": "CANCELLED",
    }
    assert {"reviewer", "translator"} <= {c.agent for c in farm.cancels}


def diamond(width: int) -> str:
    """start -> `width` parallel middles -> join: width + 2 steps."""
    lines = ["name: diamond", "steps:", "  - id: start", "    input: { n: 0 }"]
    for i in range(width):
        lines += [
            f"  - id: m{i}",
            "    needs: [start]",
            f"    input: {{ i: {i}, s: '{{{{ steps.start.result }}}}' }}",
        ]
    needs = ", ".join(f"m{i}" for i in range(width))
    lines += ["  - id: join", f"    needs: [{needs}]", "output: '{{ steps.join.result }}'"]
    return "\n".join(lines) + "\n"


async def test_a_twenty_step_diamond_runs_its_middle_at_once_and_joins_once(
    make_deps: Callable[..., Runtime], queue: SimulatedQueue, farm: AgentFarm, add_agent: Add
) -> None:
    # Calls of 2.5 s, so all 18 overlap even on a loaded machine, and a time limit far above
    # them (3 s was too close: a loaded machine made a call miss it).
    deps = make_deps(remote_queue_url=queue.url, default_agent_timeout=15000)
    wf.register(deps, diamond(18))
    add_agent("worker", "fast:delay=2.5", max_concurrency=50)
    task = queue.add_task(title="d", category="general", workflow="diamond")
    [claim] = await wf.claim_all(deps)

    line = await wf.run(deps, claim)
    assert line.outcome == "COMPLETED", line

    s = wf.steps(deps, task["id"])
    assert len(s) == 20 and all(t[-1].status == "COMPLETED" for t in s.values())
    middles = [wf.span(deps, s[f"m{i}"][0]) for i in range(18)]
    starts = sorted(a for a, _ in middles)
    print(f"18 middles started within {(starts[-1] - starts[0]).total_seconds():.2f} s")
    assert farm.peak_in_flight("worker") == 18  # every middle step with its agent at once
    assert wf.span(deps, s["join"][0])[0] >= max(b for _, b in middles)
    assert len(farm.calls_for("worker")) == 20


async def test_a_run_killed_mid_workflow_is_rescued_by_the_sweep_and_no_completed_step_repeats(
    make_deps: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Add,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deps = make_deps(remote_queue_url=queue.url, job_lease_seconds=5, lease_check_seconds=0.2)
    monkeypatch.setattr("agent_dispatch.bootstrap._runtime", deps)  # the sweep tasks' runtime
    wf.register(deps)
    example_agents(add_agent, verdict="changes")
    farm.set_behaviour("reviewer", "slow:delay=30")
    farm.set_behaviour("translator", "slow:delay=30")
    task = queue.add_task(title="Cats", category="general", workflow="write-review-translate")
    settings = deps.settings.model_dump(mode="json")
    settings["remote_queue_token"] = deps.settings.remote_queue_token.get_secret_value()
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.services.workflow_worker", json.dumps(settings)],
        cwd=Path(__file__).parents[2],
    )
    try:
        while {c.agent for c in farm.calls} != {"writer", "reviewer", "translator"}:
            assert worker.poll() is None, "the worker ended before the crash"
            await asyncio.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)  # mid-workflow: draft done, both branches working
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
    killed_at = time.monotonic()
    before = wf.statuses(deps, task["id"])
    farm.set_behaviour("reviewer", behaviour("fast", delay=0.2, result={"verdict": "changes"}))
    farm.set_behaviour("translator", behaviour("fast", delay=0.2, result="un brouillon"))
    await asyncio.sleep(5.5)  # every lease of the dead worker runs out

    rescued = await rescue_expired.fn(100)
    await stop_abandoned.fn(rescued.calls)
    lines = await wf.run_rescued(deps)

    assert before == {"draft": "COMPLETED", "review": "IN_PROGRESS", "translate": "IN_PROGRESS"}
    assert sorted(line.action for line in rescued.lines) == ["requeued"] * 3  # parent + 2 steps
    assert [line.outcome for line in lines] == ["COMPLETED"]
    assert wf.statuses(deps, task["id"]) == dict.fromkeys(
        ["draft", "review", "translate", "fix"], "COMPLETED"
    )
    assert queue.task(task["id"])["status"] == "COMPLETED"
    assert queue.finished_count(task["id"]) == 1
    assert wf.patched(queue)[task["id"]] == ["DISTRIBUTED", "IN_PROGRESS", "COMPLETED"]
    # No completed step ran again: the writer was called for draft once and for fix once.
    assert len(farm.calls_for("writer")) == 2
    s = wf.steps(deps, task["id"])
    assert len(wf.calls_of(deps, s["draft"][0])) == 1
    # The abandoned calls were closed and their agents told; each step ran a second attempt.
    for sid in ("review", "translate"):
        rows = wf.calls_of(deps, s[sid][0])
        assert [r.status for r in rows] == ["CANCELLED", "COMPLETED"]
        assert rows[0].idempotency_key != rows[1].idempotency_key
    assert {"reviewer", "translator"} <= {c.agent for c in farm.cancels}
    # Every call carried its own row's key; no key was ever used for two rows.
    keys = {r.idempotency_key for st in s.values() for t in st for r in wf.calls_of(deps, t)}
    sent = {c.idempotency_key for c in farm.calls if c.path == "/execute"}
    assert sent == keys and len(keys) == 6
    with deps.uow() as uow:
        run = uow.session.get(WorkflowRun, wf.parent(deps, task["id"]).id)
        assert run is not None and run.starts == 2
    print(
        f"crash: killed with draft COMPLETED and 2 steps IN_PROGRESS; resumed and COMPLETED "
        f"{time.monotonic() - killed_at:.1f} s after the kill (5.5 s of it waiting for leases); "
        f"agent calls {len(keys)} (draft 1, review 2, translate 2, fix 1); "
        f"cancels sent {len(farm.cancels)}"
    )
