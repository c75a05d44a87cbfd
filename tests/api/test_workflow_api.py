"""A workflow over the HTTP API: a parent's detail has its steps as a tree, a step links to
its parent, lists mark (and filter) parents and steps, and the live feed names each step
change's parent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.services.deps import NullEvents
from agent_dispatch.simulators.behaviours import behaviour
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.api.conftest import Served
from tests.api.wsclient import Feed
from tests.services import workflow_support as wf

pytestmark = [pytest.mark.postgres]


def example_agents(rt: Runtime, add_agent: Callable[..., str]) -> None:
    draft = behaviour("fast", delay=0.1, result="a draft")
    add_agent(rt, "writer", draft, categories=["writing"], tags=["draft"])
    add_agent(rt, "reviewer", behaviour("fast", delay=0.3, result={"verdict": "ok"}),
              categories=["review"])  # fmt: skip
    add_agent(rt, "translator", behaviour("fast", delay=0.3, result="fr"),
              categories=["translate"])  # fmt: skip


async def run_example(api: Served, queue: SimulatedQueue, add_agent: Callable[..., str]) -> str:
    """The example workflow run to its end (review says ok: fix is skipped); its task id."""
    api.rt.events = NullEvents()  # what is under test is the database and the API, not Prefect
    wf.register(api.rt)
    example_agents(api.rt, add_agent)
    task = queue.add_task(title="Cats", workflow="write-review-translate", payload={"brief": "c"})
    [claim] = await wf.claim_all(api.rt)
    assert (await wf.run(api.rt, claim)).outcome == "COMPLETED"
    return str(task["id"])


async def test_a_parents_detail_has_its_steps_as_a_tree_and_a_step_links_back(
    api: Served, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    qid = await run_example(api, queue, add_agent)

    with api.client() as http:
        parent = http.get(f"/api/jobs/{qid}").json()
        steps = {s["stepId"]: s for s in parent["steps"]}
        draft = http.get(f"/api/jobs/{steps['draft']['queueTaskId']}").json()

    assert (parent["kind"], parent["workflow"], parent["status"]) == (
        "workflow", "write-review-translate", "COMPLETED")  # fmt: skip
    assert [s["stepId"] for s in parent["steps"]] == ["draft", "review", "translate", "fix"]
    assert {k: (s["status"], s["needs"], s["winner"]) for k, s in steps.items()} == {
        "draft": ("COMPLETED", [], "writer"),
        "review": ("COMPLETED", ["draft"], "reviewer"),
        "translate": ("COMPLETED", ["draft"], "translator"),
        "fix": ("SKIPPED", ["review"], None),
    }
    assert steps["review"]["winnerLatencyMs"] >= 300
    assert steps["review"]["startMs"] >= steps["draft"]["endMs"]  # it waited for its need
    assert "verdict" in steps["fix"]["skippedReason"]
    assert steps["draft"]["skippedReason"] is None and steps["fix"]["winnerLatencyMs"] is None

    assert (draft["kind"], draft["stepId"], draft["steps"]) == ("step", "draft", None)
    assert (draft["parentQueueTaskId"], draft["parentJobId"]) == (qid, parent["id"])
    assert draft["result"] == "a draft" and draft["distributions"][0]["agents"][0]["won"]


async def test_job_lists_mark_parents_and_steps_and_filter_by_kind(
    api: Served, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    qid = await run_example(api, queue, add_agent)
    with api.rt.uow() as uow:  # a plain job beside it
        uow.jobs.intake(JobSpec("plain-1", "plain", "general"))
        uow.commit()

    with api.client() as http:
        everything = http.get("/api/jobs").json()["items"]
        by_kind = {k: http.get(f"/api/jobs?kind={k}").json()["items"]
                   for k in ("job", "workflow", "step")}  # fmt: skip
        bad = http.get("/api/jobs?kind=parent")

    kinds = {j["queueTaskId"]: j["kind"] for j in everything}
    assert kinds[qid] == "workflow" and kinds["plain-1"] == "job"
    assert sorted(j["stepId"] for j in everything if j["kind"] == "step") == [
        "draft", "fix", "review", "translate"]  # fmt: skip
    assert [j["queueTaskId"] for j in by_kind["workflow"]] == [qid]
    assert [j["queueTaskId"] for j in by_kind["job"]] == ["plain-1"]
    assert len(by_kind["step"]) == 4
    assert {(j["parentQueueTaskId"], j["workflow"]) for j in by_kind["step"]} == {(qid, None)}
    assert bad.status_code == 422
    assert [f["field"] for f in bad.json()["fields"]] == ["kind"]


async def test_the_live_feed_names_the_parent_and_step_of_each_step_change(
    api: Served, queue: SimulatedQueue, add_agent: Callable[..., str]
) -> None:
    async with Feed(api.ws_url, api.token, kind="job") as feed:
        qid = await run_example(api, queue, add_agent)
        with api.client() as http:
            parent_id = http.get(f"/api/jobs/{qid}").json()["id"]
        # The parent's end is the last job change of the run.
        while not any(c["queueTaskId"] == qid and c["status"] == "COMPLETED" for c in feed.changes):
            await feed.read(count=1)

    def of_steps(changes: list[dict[str, Any]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in changes:
            d = c["detail"]
            if "stepId" in d:
                assert (d["parentJobId"], d["parentQueueTaskId"]) == (parent_id, qid)
                out.setdefault(d["stepId"], []).append(c["status"])
        return out

    assert of_steps(feed.changes) == {
        "draft": ["OPEN", "DISTRIBUTED", "IN_PROGRESS", "COMPLETED"],
        "review": ["OPEN", "DISTRIBUTED", "IN_PROGRESS", "COMPLETED"],
        "translate": ["OPEN", "DISTRIBUTED", "IN_PROGRESS", "COMPLETED"],
        "fix": ["SKIPPED"],
    }
    assert all("stepId" not in c["detail"] for c in feed.changes if c["queueTaskId"] == qid)
