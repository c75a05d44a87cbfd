"""Workflow figures in analytics on real PostgreSQL: per-step success and latency, whole-run
durations, `stats` and the dashboard showing them, and step jobs kept out of the job figures.

Every expected number is worked out by hand from WORKFLOW below (seconds after B).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.cli.main import main
from agent_dispatch.db.engine import make_engine, make_session_factory
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent, Job, JobDistributionAgent, JobDistributionRecord
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.db.workflow_models import WorkflowRun
from agent_dispatch.domain.periods import Window
from agent_dispatch.reporting import dashboard
from agent_dispatch.services import stats

pytestmark = [pytest.mark.postgres]

B = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
WINDOW = Window(B, B + dt.timedelta(hours=1))
# run key -> (parent status, started, finished, starts, [(step, try, status, taken, finished)])
WORKFLOW = {
    "r1": ("COMPLETED", 0, 100, 1, [
        ("draft", 1, "COMPLETED", 1, 11), ("review", 1, "COMPLETED", 12, 32),
        ("translate", 1, "FAILED", 12, 15), ("fix", 1, "SKIPPED", None, 33)]),
    "r2": ("COMPLETED", 200, 500, 2, [
        ("draft", 1, "COMPLETED", 201, 231), ("review", 1, "COMPLETED", 232, 242),
        ("translate", 1, "COMPLETED", 232, 262), ("fix", 1, "COMPLETED", 243, 283)]),
    "r3": ("FAILED", 600, 650, 1, [
        ("draft", 1, "FAILED", 601, 611), ("draft", 2, "FAILED", 612, 622)]),
}  # fmt: skip
STEP_CATEGORY = {"draft": "writing", "review": "review", "translate": "translate", "fix": "writing"}


def at(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else B + dt.timedelta(seconds=seconds)


def seed(session: Session) -> None:
    """Three runs of `wrt` (parents in 'general') and one plain job in 'writing'."""
    agent = Agent(name="alpha", url="http://127.0.0.1:9/alpha", categories=["writing"])
    session.add(agent)
    session.add(Job(queue_task_id="solo", title="solo", category="writing", status="COMPLETED",
                    created_at=at(40), finished_at=at(50), attempts=1))  # fmt: skip
    for key, (status, started, finished, starts, steps) in WORKFLOW.items():
        parent = Job(queue_task_id=key, title=key, category="general", status=status,
                     workflow="wrt", created_at=at(started), finished_at=at(finished))  # fmt: skip
        session.add(parent)
        session.flush()
        session.add(WorkflowRun(job_id=parent.id, workflow="wrt", definition={}, starts=starts,
                                started_at=at(started)))  # fmt: skip
        for step, n, st, taken, done in steps:
            job = Job(queue_task_id=f"{key}/{step}/{n}", title=step, status=st,
                      category=STEP_CATEGORY[step], parent_job_id=parent.id, step_id=step,
                      step_try=n, created_at=at(started), distributed_at=at(taken),
                      finished_at=at(done))  # fmt: skip
            session.add(job)
            if key == "r1" and step == "draft":  # one agent call: a step's calls are calls
                session.flush()
                dist = JobDistributionRecord(job_id=job.id, attempt=1, status="COMPLETED",
                                             started_at=at(1), first_result_at=at(11),
                                             finished_at=at(11))  # fmt: skip
                session.add(dist)
                session.flush()
                session.add(JobDistributionAgent(
                    distribution_id=dist.id, agent_id=agent.id, agent_name="alpha", rank=1,
                    status="COMPLETED", latency_ms=10_000, won=True, attempts=1,
                    idempotency_key="k", started_at=at(1), finished_at=at(11)))  # fmt: skip
    session.commit()


class Transactions:
    def __init__(self, engine: Engine) -> None:
        self.factory = make_session_factory(engine)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.factory)


@pytest.fixture
def seeded(runtime: Runtime) -> Runtime:
    with Session(runtime.engine) as session:
        seed(session)
    return runtime


def check_figures(deps: stats.Transactions) -> None:
    overview = stats.window_overview(deps, WINDOW)
    (run,) = overview.workflows.runs
    assert (run.workflow, run.runs, run.completed, run.failed, run.running, run.resumed) == (
        "wrt", 3, 2, 1, 0, 1)  # fmt: skip
    assert run.success_rate == pytest.approx(2 / 3)
    # completed runs took 100 s and 300 s: p50 200, p95 100 + 0.95 * 200, max 300
    assert (run.p50_s, run.p95_s, run.max_s) == pytest.approx((200, 290, 300))
    steps = {s.step_id: s for s in overview.workflows.steps}
    assert list(steps) == ["draft", "fix", "review", "translate"]
    got = {k: (s.tries, s.completed, s.failed, s.skipped, s.success_rate) for k, s in steps.items()}
    assert got == {"draft": (4, 2, 2, 0, 0.5), "fix": (2, 1, 0, 1, 1.0),
                   "review": (2, 2, 0, 0, 1.0), "translate": (2, 1, 1, 0, 0.5)}  # fmt: skip
    # draft's completed tries took 10 s and 30 s; review's 20 s and 10 s
    assert (steps["draft"].p50_ms, steps["draft"].p95_ms) == pytest.approx((20_000, 29_000))
    assert (steps["review"].p50_ms, steps["review"].p95_ms) == pytest.approx((15_000, 19_500))
    assert steps["fix"].p50_ms == pytest.approx(40_000)
    # Job figures count queue tasks: the plain job and the three parents, never the steps.
    assert (overview.jobs["jobs"], overview.jobs["completed"], overview.jobs["failed"]) == (4, 3, 1)
    # A step's agent calls are agent calls.
    assert overview.calls["calls"] == 1 and overview.calls["wins"] == 1


def test_analytics_reports_steps_and_whole_runs(seeded: Runtime) -> None:
    check_figures(seeded)


def test_sqlite_gives_the_same_workflow_figures(tmp_path: Path) -> None:
    lite = make_engine(f"sqlite:///{tmp_path / 'lite.db'}")
    upgrade(lite)
    with Session(lite) as session:
        seed(session)
    try:
        check_figures(Transactions(lite))
    finally:
        lite.dispose()


def test_period_tables_leave_step_jobs_out_of_each_category(seeded: Runtime) -> None:
    plan = stats.plan_run(seeded, WINDOW, B + dt.timedelta(hours=2), dt.timedelta(0))
    (hour, _day), _ = stats.aggregate_periods(seeded, plan)
    jobs = hour.jobs.set_index("category")["jobs"].to_dict()
    assert jobs == {"*": 4, "general": 3, "writing": 1}  # no 'review' or 'translate' rows
    agents = hour.agents.set_index("category")["calls"].to_dict()
    assert agents == {"*": 1, "writing": 1}  # the draft step's call, in its step's category


def test_stats_and_the_dashboard_show_workflows(
    seeded: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    since = (B - dt.timedelta(hours=1)).isoformat()
    assert main(["stats", "--json", "--since", since]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["jobs"]["finished"] == 4
    (run,) = doc["workflows"]["runs"]
    assert (run["workflow"], run["runs"], run["p95_s"]) == ("wrt", 3, pytest.approx(290))
    assert {s["step_id"]: s["tries"] for s in doc["workflows"]["steps"]} == {
        "draft": 4, "fix": 2, "review": 2, "translate": 2}  # fmt: skip

    assert main(["stats", "--since", since]) == 0
    text = capsys.readouterr().out
    assert "workflow runs" in text and "workflow steps" in text
    lines = text.splitlines()
    runs_at = next(i for i, line in enumerate(lines) if line.startswith("workflow runs"))
    # title, header, rule, then the one workflow: 3 runs, 2 done, 1 failed, p50 200 s
    assert lines[runs_at + 3].split() == ["wrt", "3", "2", "1", "66.7%", "200.00", "s",
                                          "290.00", "s", "300.00", "s"]  # fmt: skip

    overview = stats.window_overview(seeded, WINDOW)
    html = dashboard.render(overview, *stats.timelines(seeded, "hour", WINDOW), "hour", B)
    assert 'id="workflows"' in html and 'data-key="wrt/draft"' in html
    assert "<td>wrt</td><td>3</td><td>2</td><td>1</td><td>66.7%</td>" in html
