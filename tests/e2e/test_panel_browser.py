"""`agent-dispatch serve` as a user runs it; the live panel in headless Chromium shows a job go
from in flight to COMPLETED with its winner, updated over the WebSocket, never reloaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.conftest import QUEUE_TOKEN
from tests.support.browser import Page, chromium
from tests.support.prefect_server import free_port

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.flow, pytest.mark.slow]

CLI = str(Path(sys.executable).with_name("agent-dispatch"))
API_TOKEN = "panel-api-token"
SHOTS = Path(os.environ.get("AD_SCREENSHOTS", "/tmp/agent-dispatch-shots"))


class Serve:
    """`agent-dispatch serve` in a process of its own, output kept in a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen([CLI, "serve", "--port", str(self.port), *args], env=env,
                                     stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
        self.http = httpx.Client(base_url=self.url, trust_env=False, timeout=30,
                                 headers={"Authorization": f"Bearer {API_TOKEN}"})  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, self.output()
            try:
                if self.http.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not answer:\n" + self.output()
            time.sleep(0.3)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def interrupt(self) -> int:
        """Ctrl-C, as a user at the terminal would."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        finally:
            self.http.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def env(database_url: str, queue: SimulatedQueue, prefect_harness: None) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "REMOTE_QUEUE_URL": queue.url,
            "REMOTE_QUEUE_TOKEN": QUEUE_TOKEN, "AGENT_ALLOW_PRIVATE_NETWORKS": "true",
            "API_TOKEN": API_TOKEN, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_LOGGING_LEVEL": "WARNING"}  # fmt: skip


# Records every drawing of the in-flight steps as [step, status, step it hangs under, agents]:
# a step's moments (1.5 to 3 s here) are checked from the record, not raced by polling.
RECORD_TREE = """
window.__treeSeen = [];
(() => {
  let last = "";
  const look = () => {
    const drawn = [...document.querySelectorAll("#inflight li[data-step]")].map((li) => {
      const up = li.parentElement.closest("li[data-step]");
      const agents = [...li.querySelectorAll(":scope > .chips .agent")]
        .map((a) => `${a.dataset.agent}:${a.dataset.status}`);
      return [li.dataset.step, li.dataset.status, up ? up.dataset.step : null, agents];
    });
    const text = JSON.stringify(drawn);
    if (drawn.length && text !== last) { last = text; window.__treeSeen.push(drawn); }
  };
  new MutationObserver(look).observe(document.querySelector("#inflight"),
    { childList: true, subtree: true, attributes: true });
})();
"""
UNDER_WAY = {(s, "draft") for s in ("OPEN", "DISTRIBUTED", "IN_PROGRESS")}


async def value(page: Page, expression: str) -> Any:
    res = await page.call("Runtime.evaluate", expression=expression, returnByValue=True)
    return res.get("result", {}).get("value")


def shown(selector: str) -> str:
    return f"!!document.querySelector({json.dumps(selector)})"


def text(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})?.textContent"


async def wait_until(page: Page, expression: str, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await value(page, expression)
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not shown after {timeout:.0f} s: {what}\n{await page.text()}")


async def open_live(page: Page, serve: Serve) -> None:
    """The panel as a user opens it (token in the fragment), once its live feed is connected."""
    await page.goto(f"{serve.url}/#token={API_TOKEN}")
    await wait_until(page, "document.querySelector('#conn')?.dataset.state === 'live'",
                     "the panel connected to /api/ws")  # fmt: skip


async def test_the_panel_shows_a_job_move_from_in_flight_to_completed_without_a_reload(
    env: dict[str, str], queue: SimulatedQueue, farm: AgentFarm, tmp_path: Path
) -> None:
    serve = Serve(env, tmp_path / "serve.log", "--no-flows")
    try:
        farm.add("steady", "fast:delay=4")
        farm.add("shaky", "failing:delay=1")  # answers first, FAILED: the race goes on
        for name in ("steady", "shaky"):  # registered the way the README does, over HTTP
            r = serve.http.post("/api/agents", json={"name": name, "url": farm.url_for(name),
                                                     "categories": ["general"]})  # fmt: skip
            assert r.status_code == 201, r.text
        task = queue.add_task(title="Summarise the report")
        qid = task["id"]

        with chromium() as browser:
            async with browser.page() as page:
                await open_live(page, serve)
                await value(page, "window.__marker = 'same page'")
                assert serve.http.post("/api/runs", json={"maxJobs": 1}).status_code == 202

                row = f"#inflight tr[data-qid='{qid}']"
                steady, shaky = (
                    f"{row} .agent[data-agent=steady]",
                    f"{row} .agent[data-agent=shaky]",
                )
                await wait_until(page, shown(f"{steady}[data-status=WORKING]"), "steady WORKING")
                await wait_until(page, shown(f"{shaky}[data-status=FAILED]"), "shaky FAILED")
                await wait_until(page, f"{text(row + ' td:nth-child(2)')} === '{task['title']}'",
                                 "the job's title")  # fmt: skip
                SHOTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(SHOTS / "panel-mid-run.png")
                assert await value(page, text(f"{row} .status")) == "IN_PROGRESS"

                ended = f"#endings tr[data-qid='{qid}'][data-status=COMPLETED]"
                winner = await wait_until(page, text(f"{ended} .winner"), "the job COMPLETED")
                assert winner == "steady"
                assert not await value(page, shown(row))  # it left the in-flight table
                latency = await value(page, text(f"{ended} .latency"))
                assert latency.endswith(" s") and float(latency.split()[0]) >= 4
                assert await value(page, "window.__marker") == "same page"  # never reloaded
                load = text("#agents tr[data-agent=steady] .load")
                await wait_until(page, f"{load} === '0/1'", "steady free again")
                finished = text("#kpi-finished b")
                await wait_until(page, f"{finished} === '1'", "the KPIs counted the job")
                assert await value(page, "window.__panel.connects") == 1
                await page.screenshot(SHOTS / "panel-after-run.png")
        assert "panel-api-token" not in serve.output()
        assert serve.interrupt() == 0, serve.output()
        assert "agent-dispatch: stopped" in serve.output()
    finally:
        serve.kill()


async def test_the_panel_draws_a_workflows_steps_as_a_tree_that_moves_live(
    env: dict[str, str], queue: SimulatedQueue, farm: AgentFarm, tmp_path: Path
) -> None:
    serve = Serve(env, tmp_path / "serve.log", "--no-flows")
    try:
        example = Path(__file__).parents[2] / "docs/examples/write-review-translate.yaml"
        added = subprocess.run(
            [CLI, "workflows", "add", str(example)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        agents = {
            "writer": ("fast:delay=1.5", ["writing"], ["draft"]),
            "reviewer": ("fast:delay=3", ["review"], []),
            "translator": ("fast:delay=3", ["translate"], []),
        }
        for name, (how, categories, tags) in agents.items():
            farm.add(name, how)
            r = serve.http.post(
                "/api/agents",
                json={
                    "name": name,
                    "url": farm.url_for(name),
                    "categories": categories,
                    "tags": tags,
                },
            )
            assert r.status_code == 201, r.text
        task = queue.add_task(
            title="Cats", workflow="write-review-translate", payload={"brief": "cats"}
        )
        qid = task["id"]

        with chromium() as browser:
            async with browser.page() as page:
                await open_live(page, serve)
                await value(page, "window.__marker = 'same page'")
                await value(page, RECORD_TREE)
                assert serve.http.post("/api/runs", json={"maxJobs": 1}).status_code == 202

                tree = f"#inflight tr[data-steps-of='{qid}'] ul.tree"
                reviewing = f"{tree} > li[data-step=draft] > ul.tree > li[data-step=review]"
                # A step is IN_PROGRESS once taken; its agent's WORKING follows as the call
                # starts (moments later, more on a loaded machine): waited for, not assumed.
                await wait_until(
                    page,
                    shown(
                        f"{reviewing}[data-status=IN_PROGRESS] .agent"
                        "[data-agent=reviewer][data-status=WORKING]"
                    ),
                    "the reviewer WORKING on review, under draft",
                )
                SHOTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(SHOTS / "panel-workflow-mid-run.png")

                ended = f"#endings tr[data-steps-of='{qid}'] ul.tree"
                fix = f"{ended} li[data-step=review] > ul.tree > li[data-step=fix]"
                await wait_until(
                    page,
                    shown(f"#endings tr[data-qid='{qid}'][data-status=COMPLETED]"),
                    "the workflow COMPLETED",
                    timeout=90,
                )
                await wait_until(page, shown(f"{fix}[data-status=SKIPPED]"), "fix SKIPPED")
                review = text(f"{ended} li[data-step=review] > .winner")
                await wait_until(
                    page, f"({review} || '').includes('reviewer in')", "review's winner"
                )
                # Every drawing of the in-flight tree, as the page drew it (RECORD_TREE).
                seen = [{step: (status, under, agents) for step, status, under, agents in drawn}
                        for drawn in await value(page, "window.__treeSeen")]  # fmt: skip
                # Each step was drawn moving in its place: running, its agent at work.
                for step_id, agent in (("draft", "writer"), ("review", "reviewer"),
                                       ("translate", "translator")):  # fmt: skip
                    under = None if step_id == "draft" else "draft"
                    assert any(
                        t.get(step_id, ())[:2] == ("IN_PROGRESS", under)
                        and f"{agent}:WORKING" in t[step_id][2]
                        for t in seen
                    ), (step_id, seen)
                # The two branches started together: one drawing shows draft done and both
                # under way. (Under way, not both IN_PROGRESS: a step's run is created on the
                # Prefect server, and one on SQLite answers 503 to a write that meets another
                # writer, which its client retries after 2 s or more; on a loaded machine
                # translate was taken only after review had ended.)
                assert any(
                    t.get("draft", ())[:1] == ("COMPLETED",)
                    and all(t.get(b, ())[:2] in UNDER_WAY for b in ("review", "translate"))
                    for t in seen
                ), seen
                # Steps live in their parent's tree, never as rows of their own.
                assert not await value(page, shown(f"tr[data-qid='{qid}/draft']"))
                assert await value(page, "window.__marker") == "same page"  # never reloaded
                assert await value(page, "window.__panel.connects") == 1
                await page.screenshot(SHOTS / "panel-workflow-after-run.png")
        assert serve.interrupt() == 0, serve.output()
    finally:
        serve.kill()


# A read held open while a change asks again, through `readSoon`, which every refresh of the
# panel (KPIs, agents, a workflow's tree) goes through; the key is one the panel never uses,
# so its own refreshes cannot add reads.
ASK_DURING_A_READ = """
(async () => {
  const reads = [];
  let release;
  const held = new Promise((r) => { release = r; });
  const read = async () => {
    reads.push(Date.now());
    if (reads.length === 1) await held;  // the first read is under way until released
  };
  readSoon("probe", 0, read);
  await new Promise((r) => setTimeout(r, 100));
  readSoon("probe", 0, read);  // a change arrives while that read is under way
  release();
  await new Promise((r) => setTimeout(r, 1000));
  return reads.length;
})()
"""


async def test_a_change_during_a_panel_read_is_read_again_not_dropped(
    env: dict[str, str], tmp_path: Path
) -> None:
    serve = Serve(env, tmp_path / "serve.log", "--no-flows")
    try:
        with chromium() as browser:
            async with browser.page() as page:
                await open_live(page, serve)
                res = await page.call("Runtime.evaluate", expression=ASK_DURING_A_READ,
                                      awaitPromise=True, returnByValue=True)  # fmt: skip
                # The read under way may predate the change: one more read follows it.
                assert res.get("result", {}).get("value") == 2, res
    finally:
        serve.kill()


async def test_serve_serves_the_flows_on_their_schedules_and_stops_on_ctrl_c(
    env: dict[str, str], tmp_path: Path
) -> None:
    serve = Serve(env, tmp_path / "serve.log")
    try:
        names: set[str] = set()
        deadline = time.monotonic() + 60
        async with get_client() as client:
            while time.monotonic() < deadline and len(names) < 4:
                deployments = await client.read_deployments()
                names = {d.name for d in deployments if d.name in
                         ("dispatch", "sweep", "health-check", "analytics")}  # fmt: skip
                time.sleep(0.5)
            assert names == {"dispatch", "sweep", "health-check", "analytics"}
            dispatch = await client.read_deployment_by_name("dispatch/dispatch")
            assert dispatch.schedules and dispatch.parameters == {"params": {"max_jobs": 100}}
        started = serve.http.post("/api/runs", json={"maxJobs": 1}).json()
        assert started["via"] == "deployment", json.dumps(started)
        assert serve.interrupt() == 0, serve.output()
    finally:
        serve.kill()
        async with get_client() as client:  # the session's Prefect server is shared
            for d in await client.read_deployments():
                if d.name in ("dispatch", "sweep", "health-check", "analytics"):
                    await client.delete_deployment(d.id)


def test_serve_refuses_a_public_address_without_a_token(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if k != "API_TOKEN"}
    done = subprocess.run([CLI, "serve", "--host", "0.0.0.0", "--no-flows"], env=bare,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0 without API_TOKEN" in done.stderr
