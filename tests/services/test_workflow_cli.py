"""`jobs show` and `jobs list` of a finished workflow run; `workflows stats` on it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.cli.main import main
from agent_dispatch.simulators.behaviours import behaviour
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.services import workflow_support as wf


async def test_jobs_show_draws_the_steps_as_a_tree_with_status_winner_and_latency(
    deps: Runtime,
    queue: SimulatedQueue,
    add_agent: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("agent_dispatch.bootstrap._runtime", deps)
    wf.register(deps)
    add_agent(
        "writer",
        behaviour("fast", delay=0.1, result="a draft"),
        categories=("writing",),
        tags=["draft"],
    )
    add_agent(
        "reviewer",
        behaviour("fast", delay=0.4, result={"verdict": "changes"}),
        categories=("review",),
    )
    add_agent(
        "translator", behaviour("fast", delay=0.4, result="un brouillon"), categories=("translate",)
    )
    task = queue.add_task(title="Cats", category="general", workflow="write-review-translate")
    [claim] = await wf.claim_all(deps)
    assert (await wf.run(deps, claim)).outcome == "COMPLETED"
    capsys.readouterr()

    assert main(["jobs", "show", task["id"]]) == 0
    shown = capsys.readouterr().out
    with capsys.disabled():
        print(shown)
    tree = [line.strip() for line in shown.splitlines() if "─" in line]
    names = [line.replace("│", "").split()[1] for line in tree]
    assert names == ["draft", "review", "fix", "translate"]
    assert tree[0].startswith("└─ draft") and "winner writer in" in tree[0]
    assert tree[1].startswith("├─ review") and "winner reviewer in" in tree[1]
    assert tree[2].startswith("│  └─ fix") and "COMPLETED" in tree[2]
    assert tree[3].startswith("└─ translate") and "winner translator" in tree[3]
    assert "workflow  write-review-translate, 4 steps" in shown

    assert main(["jobs", "show", task["id"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["stepId"] for s in data["steps"]] == ["draft", "review", "translate", "fix"]
    assert {s["status"] for s in data["steps"]} == {"COMPLETED"}

    assert main(["jobs", "list"]) == 0
    listed = capsys.readouterr().out
    assert "workflow write-review-translate" in listed
    for sid in ("draft", "review", "translate", "fix"):
        assert f"step {sid}" in listed

    assert main(["workflows", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["runs"][0]["completed"] == 1
    assert {s["step_id"]: s["completed"] for s in stats["steps"]} == dict.fromkeys(
        ["draft", "fix", "review", "translate"], 1
    )
    assert main(["workflows", "stats"]) == 0
    stats_text = capsys.readouterr().out
    assert "write-review-translate" in stats_text
    with capsys.disabled():
        print(stats_text)
