"""The REST API over real HTTP: access, validation, pagination, agents, jobs, stats, health."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from tests.api.conftest import API_TOKEN, Served

pytestmark = [pytest.mark.postgres]

NEW_AGENT = {"name": "writer", "url": "http://127.0.0.1:9/agent", "categories": ["general"]}


def seed_jobs(rt: Runtime, specs: list[tuple[str, str]], start: dt.datetime | None = None) -> None:
    """Store OPEN jobs (queue task id, category), one second apart, oldest first."""
    base = start or utcnow() - dt.timedelta(hours=1)
    with rt.uow() as uow:
        for i, (qid, category) in enumerate(specs):
            job_id = uow.jobs.intake(JobSpec(qid, f"title {qid}", category))
            uow.jobs.get(job_id).created_at = base + dt.timedelta(seconds=i)  # type: ignore[union-attr]
        uow.commit()


def error_of(response: Any) -> dict[str, Any]:
    doc: dict[str, Any] = response.json()
    assert set(doc) <= {"error", "message", "fields"} and "Traceback" not in response.text
    return doc


# -- access -----------------------------------------------------------------------------------


def test_no_token_is_401_and_a_wrong_token_403_for_reads_and_writes(api: Served) -> None:
    with api.client(token=None) as anonymous, api.client(token="wrong") as wrong:
        for method, path in [("GET", "/api/jobs"), ("POST", "/api/agents"), ("GET", "/api/stats")]:
            r = anonymous.request(method, path, json=NEW_AGENT)
            assert r.status_code == 401, (method, path)
            assert error_of(r)["error"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
            assert wrong.request(method, path, json=NEW_AGENT).status_code == 403
    with api.client() as ok:
        assert ok.get("/api/jobs").status_code == 200


def test_public_read_opens_the_gets_only(serve: Callable[..., Served]) -> None:
    api = serve(api_public_read=True)
    with api.client(token=None) as anonymous:
        assert anonymous.get("/api/jobs").status_code == 200
        assert anonymous.get("/api/agents").status_code == 200
        assert anonymous.post("/api/agents", json=NEW_AGENT).status_code == 401
        assert anonymous.delete("/api/agents/x").status_code == 401


def test_without_api_token_the_api_is_open(serve: Callable[..., Served]) -> None:
    api = serve(api_token="")
    with api.client(token=None) as anonymous:
        assert anonymous.get("/api/agents").status_code == 200


def test_a_token_in_the_query_is_accepted_and_never_logged(
    api: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), api.client(token=None) as anonymous:
        assert anonymous.get(f"/api/jobs?token={API_TOKEN}").status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("uvicorn"))
    assert "/api/jobs?token=***" in logged
    assert API_TOKEN not in logged


# -- errors -----------------------------------------------------------------------------------


def test_unknown_paths_and_methods_are_json_errors(api: Served) -> None:
    with api.client() as c:
        assert error_of(c.get("/api/nothing-here"))["error"] == "not_found"
        r = c.put("/api/jobs")
        assert r.status_code == 405 and error_of(r)["error"] == "method_not_allowed"


def test_openapi_and_docs_are_served(api: Served) -> None:
    with api.client() as c:
        doc = c.get("/api/openapi.json").json()
        assert {"/api/jobs", "/api/jobs/{queue_task_id}", "/api/jobs/{queue_task_id}/cancel",
                "/api/agents", "/api/agents/{name}", "/api/stats", "/api/runs",
                "/api/health"} <= set(doc["paths"])  # fmt: skip
        assert "skillLevel" in doc["components"]["schemas"]["AgentIn"]["properties"]
        assert c.get("/api/docs").status_code == 200


# -- agents -----------------------------------------------------------------------------------


def test_agents_are_registered_listed_changed_and_removed(api: Served) -> None:
    with api.client() as c:
        r = c.post("/api/agents", json={**NEW_AGENT, "tags": ["en", "en"], "skillLevel": 4,
                                        "maxConcurrency": 3})  # fmt: skip
        assert r.status_code == 201, r.text
        made = r.json()
        assert (made["name"], made["skillLevel"], made["maxConcurrency"]) == ("writer", 4, 3)
        assert made["tags"] == ["en"] and made["inFlight"] == 0 and made["active"] is True
        assert [a["name"] for a in c.get("/api/agents").json()] == ["writer"]

        r = c.patch("/api/agents/writer", json={"active": False, "categories": ["code", "docs"],
                                                 "skillLevel": 2})  # fmt: skip
        assert r.status_code == 200, r.text
        changed = r.json()
        assert (changed["active"], changed["categories"], changed["skillLevel"]) == (
            False, ["code", "docs"], 2)  # fmt: skip
        assert changed["maxConcurrency"] == 3  # untouched

        assert c.delete("/api/agents/writer").status_code == 204
        assert c.get("/api/agents").json() == []
        assert error_of(c.delete("/api/agents/writer"))["error"] == "not_found"
        assert c.patch("/api/agents/writer", json={"active": True}).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"skillLevel": 9}, "skillLevel"),
        ({"categories": []}, "categories"),
        ({"maxConcurrency": 0}, "maxConcurrency"),
        ({"protocol": "smoke-signals"}, "protocol"),
        ({"name": "no spaces"}, "name"),
        ({"colour": "red"}, "colour"),
        ({"url": "ftp://example.com/agent"}, "url"),
        ({"tokenRef": "nobody"}, "tokenRef"),
    ],
)
def test_bad_agent_fields_are_422_naming_the_field(
    api: Served, change: dict[str, Any], field: str
) -> None:
    with api.client() as c:
        r = c.post("/api/agents", json={**NEW_AGENT, **change})
    assert r.status_code == 422, r.text
    assert field in [f["field"] for f in error_of(r)["fields"]]


def test_private_agent_addresses_are_refused_by_the_ssrf_guard(
    serve: Callable[..., Served],
) -> None:
    api = serve(agent_allow_private_networks=False)
    with api.client() as c:
        r = c.post("/api/agents", json={**NEW_AGENT, "url": "http://169.254.169.254/latest"})
        assert r.status_code == 422
        assert error_of(r)["fields"][0]["field"] == "url"
        assert "refused" in r.json()["message"]
        assert c.get("/api/agents").json() == []


def test_a_second_agent_with_the_same_name_is_a_conflict(api: Served) -> None:
    with api.client() as c:
        assert c.post("/api/agents", json=NEW_AGENT).status_code == 201
        r = c.post("/api/agents", json=NEW_AGENT)
    assert r.status_code == 409 and "already exists" in r.json()["message"]


def test_patch_refuses_bad_values_and_nulls(api: Served) -> None:
    with api.client() as c:
        c.post("/api/agents", json=NEW_AGENT)
        assert c.patch("/api/agents/writer", json={"skillLevel": 0}).status_code == 422
        r = c.patch("/api/agents/writer", json={"active": None})
        assert r.status_code == 422 and r.json()["fields"][0]["field"] == "active"
        assert c.patch("/api/agents/writer", json={"url": "http://x"}).status_code == 422


# -- jobs -------------------------------------------------------------------------------------


def test_jobs_page_newest_first_with_an_opaque_cursor(api: Served) -> None:
    seed_jobs(api.rt, [(f"t{i}", "general" if i % 2 else "code") for i in range(7)])
    seen: list[str] = []
    cursor = None
    with api.client() as c:
        for expected in (3, 3, 1):
            params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = c.get("/api/jobs", params=params).json()
            assert len(page["items"]) == expected
            seen += [j["queueTaskId"] for j in page["items"]]
            cursor = page["nextCursor"]
        assert cursor is None
        assert seen == [f"t{i}" for i in reversed(range(7))]

        code = c.get("/api/jobs", params={"category": "code"}).json()["items"]
        assert [j["queueTaskId"] for j in code] == ["t6", "t4", "t2", "t0"]
        assert c.get("/api/jobs", params={"status": "COMPLETED"}).json()["items"] == []
        assert len(c.get("/api/jobs", params={"status": "OPEN"}).json()["items"]) == 7


def test_since_keeps_jobs_created_at_or_after_it(api: Served) -> None:
    start = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    seed_jobs(api.rt, [("old", "general"), ("mid", "general"), ("new", "general")], start)
    with api.client() as c:
        items = c.get("/api/jobs", params={"since": "2026-01-01T12:00:01"}).json()["items"]
        assert [j["queueTaskId"] for j in items] == ["new", "mid"]
        items = c.get("/api/jobs", params={"since": "2026-01-01T13:00:01+01:00"}).json()["items"]
        assert [j["queueTaskId"] for j in items] == ["new", "mid"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": "lots"}, "limit"),
        ({"status": "DONE"}, "status"),
        ({"since": "last tuesday"}, "since"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_field(
    api: Served, params: dict[str, Any], field: str
) -> None:
    with api.client() as c:
        r = c.get("/api/jobs", params=params)
    assert r.status_code == 422, r.text
    assert [f["field"] for f in error_of(r)["fields"]] == [field]


def test_unknown_jobs_are_404(api: Served) -> None:
    with api.client() as c:
        assert error_of(c.get("/api/jobs/no-such-task"))["error"] == "not_found"
        assert c.post("/api/jobs/no-such-task/cancel").status_code == 404


def test_cancel_ends_an_open_job_and_tells_the_queue(api: Served, queue: SimulatedQueue) -> None:
    task = queue.add_task(title="to cancel")
    seed_jobs(api.rt, [(task["id"], "general")])
    with api.client() as c:
        r = c.post(f"/api/jobs/{task['id']}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "CANCELLED"
        assert c.get(f"/api/jobs/{task['id']}").json()["status"] == "CANCELLED"
        again = c.post(f"/api/jobs/{task['id']}/cancel")
        assert again.status_code == 409 and "already CANCELLED" in again.json()["message"]
    assert queue.task(task["id"])["status"] == "CANCELLED"


# -- stats and health -------------------------------------------------------------------------


def test_stats_refuse_a_future_since(api: Served) -> None:
    with api.client() as c:
        r = c.get("/api/stats", params={"since": "2999-01-01T00:00:00Z"})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "since"


def test_health_reports_database_and_queue(
    serve: Callable[..., Served], queue: SimulatedQueue
) -> None:
    with serve().client() as c:
        doc = c.get("/api/health").json()
    assert doc["ok"] and doc["database"]["ok"] and doc["queue"]["ok"]
    with serve(remote_queue_url="http://127.0.0.1:9").client() as c:
        doc = c.get("/api/health").json()
    assert doc["database"]["ok"] and not doc["queue"]["ok"] and not doc["ok"]
    assert "ConnectError" in doc["queue"]["detail"] or "Queue" in doc["queue"]["detail"]


def test_the_panel_is_served_at_the_root(api: Served, farm: AgentFarm) -> None:
    with api.client(token=None) as c:
        r = c.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]


def test_the_dashboard_is_served_under_report_behind_the_token(
    serve: Callable[..., Served], tmp_path: Any
) -> None:
    (tmp_path / "index.html").write_text("<html>dashboard</html>")
    api = serve(report_dir=tmp_path)
    with api.client() as c, api.client(token=None) as anonymous:
        assert c.get("/api/meta").json()["dashboardUrl"] == "/report/"
        page = c.get("/report/")
        assert page.status_code == 200 and "dashboard" in page.text
        assert anonymous.get("/report/").status_code == 401
        assert anonymous.get(f"/report/?token={API_TOKEN}").status_code == 200
        assert c.get("/report/../../../etc/passwd").status_code == 404
        assert c.get("/report/%2e%2e/%2e%2e/etc/passwd").status_code == 404
