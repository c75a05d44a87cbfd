"""Hedged dispatch, result strategies and learned ranking on SQLite and loopback agents."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pytest

from agent_dispatch.bootstrap import Runtime, set_runtime
from agent_dispatch.cli.jobs_cmd import cmd_show
from agent_dispatch.db.models import AgentCategoryStats, Job
from agent_dispatch.services.dispatching import PlainSteps, dispatch_one
from agent_dispatch.services.finishing import NOT_NEEDED
from agent_dispatch.services.intake import store_and_lease
from agent_dispatch.services.queue_io import fetch_open_page
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.behaviours import behaviour
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.support.service_deps import RecordingEvents

# A long record makes the order certain with exploration off: best first, then the next.
BEST = {"runs": 60, "successes": 60, "reputation": 0.95}
GOOD = {"runs": 60, "successes": 50, "failures": 10, "reputation": 0.8}
FAIR = {"runs": 60, "successes": 40, "failures": 20, "reputation": 0.6}


async def _dispatch(deps: Runtime) -> list[tuple[str, str, str | None]]:
    page = await fetch_open_page(deps, None, 50)
    claims = (await store_and_lease(deps, page.tasks, len(page.tasks))).claims
    lines = [await dispatch_one(PlainSteps(deps), c, capacity_wait=0) for c in claims]
    return [(line.queue_task_id, str(line.outcome), line.winner) for line in lines]


def _executions(farm: AgentFarm, name: str) -> int:
    return sum(1 for c in farm.calls_for(name) if c.path == "/execute")


def _job(deps: Runtime, qid: str) -> Job:
    with deps.uow() as uow:
        job = uow.jobs.find(qid)
        assert job is not None
        _ = [d.agents for d in job.distributions]  # load while the session is open
        return job


def _rows(deps: Runtime, qid: str) -> dict[str, Any]:
    job = _job(deps, qid)
    return {r.agent_name: r for r in job.distributions[-1].agents}


@pytest.fixture
def smart(make_deps: Callable[..., Runtime], queue: SimulatedQueue) -> Callable[..., Runtime]:
    def build(**overrides: Any) -> Runtime:
        return make_deps(**{"remote_queue_url": queue.url, "ranking_explore": False, **overrides})

    return build


async def test_a_hedged_job_calls_only_the_best_agent_when_it_is_fast(
    smart: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    deps = smart(dispatch_policy="hedge", hedge_delay_ms=2000)
    add_agent("best", **BEST)
    add_agent("backup", **GOOD)
    task = queue.add_task(title="Summarise", category="general")

    assert await _dispatch(deps) == [(task["id"], "COMPLETED", "best")]

    assert (_executions(farm, "best"), _executions(farm, "backup")) == (1, 0)
    rows = _rows(deps, task["id"])
    assert rows["backup"].status == "CANCELLED" and rows["backup"].error == NOT_NEEDED
    assert rows["backup"].started_at is None
    events = deps.events
    assert isinstance(events, RecordingEvents)
    assert events.statuses("agent", "backup") == ["ASSIGNED", "CANCELLED"]
    ended = [a.detail for a in events.seen if a.kind == "job" and a.status == "COMPLETED"]
    assert ended[0]["policy"] == "hedge" and ended[0]["agents_called"] == 1
    with deps.uow() as uow:
        backup = uow.agents.get_by_name("backup")
        assert backup is not None and backup.runs == GOOD["runs"]  # a reserve is not a run


async def test_a_hedged_job_adds_the_next_agent_when_the_best_is_slow(
    smart: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    deps = smart(dispatch_policy="hedge", hedge_delay_ms=300)
    best_id = add_agent("best", "slow:delay=5", **BEST)
    backup_id = add_agent("backup", **GOOD)
    task = queue.add_task(title="Summarise", category="general")

    assert await _dispatch(deps) == [(task["id"], "COMPLETED", "backup")]

    assert (_executions(farm, "best"), _executions(farm, "backup")) == (1, 1)
    assert [c.agent for c in farm.cancels] == ["best"]
    events = deps.events
    assert isinstance(events, RecordingEvents)
    working = [a.detail for a in events.seen if a.kind == "agent" and a.status == "WORKING"]
    assert working[0]["launch"] == "first"
    assert working[1]["launch"].startswith("hedge: no good answer")
    with deps.uow() as uow:
        learned = {r.agent_id: r for r in uow.session.query(AgentCategoryStats)}
    # The cancelled loser is censored: neither a success nor a failure of "best".
    assert (learned[best_id].successes, learned[best_id].failures) == (0.0, 0.0)
    assert learned[best_id].censored == 1.0
    assert learned[backup_id].successes == 1.0 and learned[backup_id].category == "general"


async def test_a_quorum_job_with_disagreeing_agents_escalates_until_two_agree(
    smart: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    deps = smart(dispatch_policy="single")
    add_agent("yes", behaviour("fast", result={"answer": "yes", "n": 1}), **BEST)
    add_agent("no", behaviour("fast", result={"n": 1, "answer": "no"}), **GOOD)
    add_agent("no-too", behaviour("fast", result={"answer": "no", "n": 1}), **FAIR)
    task = queue.add_task(
        title="Classify", category="general", result_strategy={"type": "quorum", "quorum": 2}
    )

    assert await _dispatch(deps) == [(task["id"], "COMPLETED", "no")]

    assert [_executions(farm, n) for n in ("yes", "no", "no-too")] == [1, 1, 1]
    assert queue.task(task["id"])["result"] == {"answer": "no", "n": 1}
    job = _job(deps, task["id"])
    assert job.result_strategy == {"type": "quorum", "quorum": 2}
    events = deps.events
    assert isinstance(events, RecordingEvents)
    third = [
        a.detail
        for a in events.seen
        if a.kind == "agent" and a.agent_name == "no-too" and a.status == "WORKING"
    ]
    assert third[0]["launch"] == "1 agree, 2 needed"
    ended = [a.detail for a in events.seen if a.kind == "job" and a.status == "COMPLETED"]
    assert ended[0]["decided"] == "quorum(2): 2 of 3 answers agree"


async def test_a_quorum_that_never_agrees_fails_at_the_escalation_limit(
    smart: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    deps = smart(dispatch_policy="single", quorum_max_agents=2)
    add_agent("yes", behaviour("fast", result="yes"), **BEST)
    add_agent("no", behaviour("fast", result="no"), **GOOD)
    add_agent("maybe", behaviour("fast", result="maybe"), **FAIR)
    task = queue.add_task(title="Classify", category="general", result_strategy={"type": "quorum"})

    assert await _dispatch(deps) == [(task["id"], "FAILED", None)]

    assert _executions(farm, "maybe") == 0  # the limit of 2 agents was reached
    assert "no 2 answers agree" in queue.task(task["id"])["error"]


async def test_best_score_waits_for_every_agent_and_takes_the_highest_score(
    smart: Callable[..., Runtime],
    queue: SimulatedQueue,
    farm: AgentFarm,
    add_agent: Callable[..., str],
) -> None:
    deps = smart(dispatch_rules={"general": {"strategy": "best-score"}})
    add_agent("quick-but-unsure", "fast:score=0.3", **BEST)
    add_agent("sure", "fast:delay=0.3:score=0.9", **GOOD)
    add_agent("middling", "fast:delay=0.1:score=0.6", **FAIR)
    task = queue.add_task(title="Draft", category="general")

    assert await _dispatch(deps) == [(task["id"], "COMPLETED", "sure")]

    rows = _rows(deps, task["id"])
    assert {n: r.status for n, r in rows.items()} == dict.fromkeys(rows, "COMPLETED")
    assert rows["sure"].won and rows["sure"].score == 0.9


async def test_jobs_show_prints_each_chosen_agents_score_interval_and_exploration(
    smart: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    deps = smart(dispatch_policy="hedge", hedge_delay_ms=2000)
    add_agent("best", **BEST)
    add_agent("backup", **GOOD)
    task = queue.add_task(title="Summarise", category="general")
    await _dispatch(deps)

    previous = set_runtime(deps)
    try:
        assert cmd_show(argparse.Namespace(id=task["id"], json=False)) == 0
    finally:
        set_runtime(previous)
    out = capsys.readouterr().out
    assert "(hedge, first)" in out
    assert "SUCCESS" in out and "90% INTERVAL" in out and "EXPLORATION" in out
    best_line = next(
        line for line in out.splitlines() if line.strip().startswith("best ") and "[" in line
    )
    assert " no " in best_line and " yes" in best_line  # not an exploration pick; called


def _show(deps: Runtime, qid: str, capsys: pytest.CaptureFixture[str]) -> str:
    previous = set_runtime(deps)
    try:
        assert cmd_show(argparse.Namespace(id=qid, json=False)) == 0
    finally:
        set_runtime(previous)
    out = capsys.readouterr().out
    print(out)  # the report pastes this text (pytest -s shows it)
    return out


def _start_offsets(show: str) -> dict[str, float | None]:
    """AGENT -> START MS from the agents table of `jobs show` (None: never started)."""
    lines = show.splitlines()
    head = next(i for i, line in enumerate(lines) if "START MS" in line)
    offsets: dict[str, float | None] = {}
    for line in lines[head + 2 :]:
        if not line.startswith("    ") or line.strip() == "why:":
            break
        name, start = line.split()[:2]
        offsets[name] = None if start == "-" else float(start)
    return offsets


async def test_jobs_show_of_a_hedged_job_names_the_hedge_and_its_delay(
    smart: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    deps = smart(dispatch_policy="hedge", hedge_delay_ms=300)
    add_agent("best", "slow:delay=5", **BEST)
    add_agent("backup", **GOOD)
    add_agent("spare", **FAIR)
    task = queue.add_task(title="Summarise", category="general")
    await _dispatch(deps)

    out = _show(deps, task["id"], capsys)
    assert "(hedge, first)" in out and "decided  first: first good answer" in out
    start = _start_offsets(out)
    assert start["backup"] - start["best"] >= 300  # the hedge waited its delay, visibly
    assert start["spare"] is None and NOT_NEEDED in out  # the reserve was never called
    events = deps.events
    assert isinstance(events, RecordingEvents)
    assigned = {a.agent_name: a.detail for a in events.seen if a.status == "ASSIGNED"}
    assert assigned["best"]["rank"] == 1 and assigned["best"]["exploration"] is False
    assert 0 < assigned["best"]["low"] < assigned["best"]["score"] < assigned["best"]["high"]
    assert assigned["best"]["expected_ms"] < assigned["backup"]["expected_ms"]
    working = {a.agent_name: a.detail for a in events.seen if a.status == "WORKING"}
    launch = working["backup"]["launch"]  # "hedge: no good answer N ms after the last start"
    assert launch.startswith("hedge: no good answer ") and int(launch.split()[4]) >= 300


async def test_jobs_show_of_a_quorum_job_names_each_escalation_and_the_decision(
    smart: Callable[..., Runtime],
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    deps = smart(dispatch_policy="single")
    add_agent("yes", behaviour("fast", result={"answer": "yes"}), **BEST)
    add_agent("no", behaviour("fast", result={"answer": "no"}), **GOOD)
    add_agent("no-too", behaviour("fast", result={"answer": "no"}), **FAIR)
    task = queue.add_task(
        title="Classify", category="general", result_strategy={"type": "quorum", "quorum": 2}
    )
    await _dispatch(deps)

    out = _show(deps, task["id"], capsys)
    assert "(single, quorum(2))" in out
    assert "decided  quorum(2): 2 of 3 answers agree" in out
    start = _start_offsets(out)
    assert start["yes"] is not None and start["no"] is not None and start["no-too"] is not None
    assert start["no-too"] > max(start["yes"], start["no"])  # added after the two disagreed
