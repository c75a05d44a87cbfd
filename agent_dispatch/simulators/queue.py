"""SimulatedQueue: the remote job queue of the remote-queue contract, in memory, over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime as dt
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from agent_dispatch.simulators.asgi import bearer_ok, error, observed, read_json, retry_after
from agent_dispatch.simulators.faults import Fault, FaultPlan, MalformedKind
from agent_dispatch.simulators.queue_store import STATUSES, CursorMode, TaskStore, utc_iso
from agent_dispatch.simulators.server import RunningServer, serve_in_thread

ADMIN_PREFIX = "/_sim/"


@dataclasses.dataclass(frozen=True, slots=True)
class PatchRecord:
    task_id: str
    body: Any
    status_code: int
    at: float  # time.monotonic()


@dataclasses.dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: str
    status_code: int | None  # None: the client left before an answer
    authorization: bool  # whether an Authorization header was sent
    at: float  # time.monotonic()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _wire(value: Any) -> Any:
    return utc_iso(value) if isinstance(value, dt.datetime) else value


def _change_problem(body: Any) -> str | None:
    """Why a PATCH body is not a StatusChange, or None when it is one."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for key in ("status", "expectedStatus"):
        if body.get(key) not in STATUSES:
            return f"{key} must be one of {', '.join(STATUSES)}"
    for key in ("agentId", "error"):
        if key in body and not isinstance(body[key], str):
            return f"{key} must be a string"
    return None


class SimulatedQueue:
    """Thread-safe: seed, program faults and observe from any thread while it serves."""

    def __init__(self, token: str | None = "sim-token") -> None:
        self._store = TaskStore()
        self._faults = FaultPlan()
        self._lock = threading.Lock()
        self._token = token
        self._patches: list[PatchRecord] = []
        self._requests: list[RequestRecord] = []
        self._arrivals: list[tuple[int, int, dict[str, Any]]] = []  # (left, per list, fields)
        self.url: str | None = None  # set while served by serve()
        router = Starlette(
            routes=[
                Route("/tasks", self._list, methods=["GET"]),
                Route("/tasks/{task_id}", self._get, methods=["GET"]),
                Route("/tasks/{task_id}", self._patch, methods=["PATCH"]),
                Route(ADMIN_PREFIX + "state", self._admin_state, methods=["GET"]),
            ]
        )
        self.app = observed(router, on_response=self._log_request, on_end=self._log_unanswered)

    @contextlib.contextmanager
    def serve(self, port: int = 0) -> Iterator[RunningServer]:
        with serve_in_thread(self.app, port) as running:
            self.url = running.url
            try:
                yield running
            finally:
                self.url = None

    # Seeding

    def add_task(self, **fields: Any) -> dict[str, Any]:
        """Add a valid task; fields use wire or snake_case names, datetimes become ISO strings."""
        task: dict[str, Any] = {
            "title": "Simulated task",
            "description": "",
            "category": "general",
            "tags": [],
            "skillLevel": 1,
            "payload": {},
            "status": "OPEN",
            "createdAt": utc_iso(),
        }
        task.update({_camel(k): _wire(v) for k, v in fields.items()})
        return self._store.add(task, assign_id=True)

    def add_raw(self, item: dict[str, Any], *, status: str | None = None) -> dict[str, Any]:
        """Serve `item` as given, however invalid; listed under `status`, its own, or OPEN."""
        return self._store.add(item, status)

    def add_raw_json(self, text: str, *, task_id: str | None = None, status: str = "OPEN") -> None:
        """Serve the JSON text `text` as one item, as is: for items Python's json module
        cannot even write (3,000 levels deep, 5,000-digit numbers, lone surrogates).
        `task_id` lets PATCH /tasks/{task_id} address it."""
        item: dict[str, Any] = {"status": status}
        if task_id is not None:
            item["id"] = task_id
        self._store.add(item, status, raw=text)

    def set_cursor_mode(self, mode: CursorMode) -> None:
        """What nextCursor means from now on (see queue_store.CursorMode)."""
        self._store.cursor_mode = mode

    def insert_while_listing(self, total: int, per_list: int = 1, **fields: Any) -> None:
        """On each GET /tasks?status=OPEN, first add `per_list` new tasks ahead of all others
        (older createdAt), until `total` were added: tasks that arrive while a consumer pages
        and land on pages it has already read."""
        with self._lock:
            self._arrivals.append((total, per_list, fields))

    def set_status(self, task_id: str, status: str) -> None:
        """Move a task as the queue's owner would, ignoring the transition rules."""
        self._store.set_status(task_id, status)

    # Faults

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: float | None = None,
        *,
        method: str | None = None,
    ) -> None:
        self._faults.add(Fault("fail", method, status=status, retry_after=retry_after), n)

    def delay_next(self, n: int, seconds: float, *, method: str | None = None) -> None:
        self._faults.add(Fault("delay", method, seconds=seconds), n)

    def malformed_next(
        self, n: int = 1, kind: MalformedKind = "text", *, method: str | None = None
    ) -> None:
        """Answer 200 with a non-JSON ("text") or wrong-shaped ("shape") body, without acting."""
        self._faults.add(Fault("malformed", method, malformed=kind), n)

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_token(self, token: str | None) -> None:
        """None turns authentication off."""
        with self._lock:
            self._token = token

    # Observation

    @property
    def patches(self) -> list[PatchRecord]:
        with self._lock:
            return list(self._patches)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def task(self, task_id: str) -> dict[str, Any]:
        found = self._store.get(task_id)
        if found is None:
            raise KeyError(task_id)
        return found

    def tasks_in(self, status: str) -> list[dict[str, Any]]:
        return self._store.tasks_in(status)

    def counts(self) -> dict[str, int]:
        return self._store.counts()

    def finished_count(self, task_id: str) -> int:
        """Successful terminal PATCHes the task got; the queue refuses a second one, so this
        is at most 1 whatever the consumer does: use finish_attempts to prove "once"."""
        return self._store.finished_count(task_id)

    def finish_attempts(self, task_id: str) -> int:
        """Terminal PATCHes for the task that reached the queue, accepted or refused.

        Injected faults stand for a proxy in front of the queue: those requests never reach
        it and are not counted."""
        return self._store.attempts()[0].get(task_id, 0)

    def take_attempts(self, task_id: str) -> int:
        """PATCHes to DISTRIBUTED for the task that reached the queue, accepted or refused."""
        return self._store.attempts()[1].get(task_id, 0)

    def state(self) -> dict[str, Any]:
        """What GET /_sim/state answers."""
        finished = self._store.finished()
        finish_attempts, take_attempts = self._store.attempts()
        with self._lock:
            patches = Counter(p.task_id for p in self._patches)
            requests = len(self._requests)
        return {
            "counts": self._store.counts(),
            "patches": dict(patches),
            "finished": finished,
            "finishedMoreThanOnce": sorted(t for t, n in finished.items() if n > 1),
            "finishAttempts": finish_attempts,
            "takeAttempts": take_attempts,
            "requests": requests,
            "pendingFaults": self._faults.pending(),
        }

    # HTTP

    def _log_unanswered(self, scope: Scope, status: int | None) -> None:
        if status is None:
            self._log_request(scope, None)

    def _log_request(self, scope: Scope, status: int | None) -> None:
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            return
        headers = dict(scope["headers"])
        record = RequestRecord(
            scope["method"],
            path,
            scope["query_string"].decode("latin-1"),
            status,
            b"authorization" in headers,
            time.monotonic(),
        )
        with self._lock:
            self._requests.append(record)

    async def _gate(self, request: Request) -> Response | None:
        """Injected faults first (as a proxy in front would), then auth; None lets it through."""
        faults = self._faults.take(request.method)
        if faults.delay is not None:
            await asyncio.sleep(faults.delay.seconds)
        if faults.fail is not None:
            fail = faults.fail
            return error(fail.status, "simulated failure", retry_after(fail.retry_after))
        with self._lock:
            token = self._token
        if not bearer_ok(request.headers, token):
            return error(401, "missing or wrong bearer token")
        if faults.malformed is not None:
            if faults.malformed.malformed == "text":
                return PlainTextResponse("<html>upstream went away</html>", media_type="text/html")
            return JSONResponse({"data": "not a page", "cursor": 7})
        return None

    async def _list(self, request: Request) -> Response:
        if (early := await self._gate(request)) is not None:
            return early
        query = request.query_params
        status = query.get("status", "OPEN")
        if status not in STATUSES:
            return error(400, f"unknown status {status!r}")
        try:
            limit = int(query.get("limit", "50"))
        except ValueError as exc:
            return error(400, str(exc))
        if not 1 <= limit <= 500:
            return error(400, "limit must be within 1..500")
        if status == "OPEN":
            self._arrive()
        try:
            items, next_cursor = self._store.page(status, limit, query.get("cursor"))
        except ValueError as exc:
            return error(400, str(exc))
        # Items are listed as stored JSON text, so raw (hostile) items are served verbatim;
        # a surrogate in raw text goes out as the invalid UTF-8 a broken queue would send.
        body = f'{{"tasks":[{",".join(items)}],"nextCursor":{json.dumps(next_cursor)}}}'
        return Response(body.encode("utf-8", "surrogatepass"), media_type="application/json")

    def _arrive(self) -> None:
        with self._lock:
            if not self._arrivals:
                return
            left, per_list, fields = self._arrivals[0]
            count = min(left, per_list)
            if left > count:
                self._arrivals[0] = (left - count, per_list, fields)
            else:
                self._arrivals.pop(0)
        for _ in range(count):
            self._store.add(
                {"title": "Arrived while listing", "status": "OPEN", **fields},
                assign_id=True,
                first=True,
            )

    async def _get(self, request: Request) -> Response:
        if (early := await self._gate(request)) is not None:
            return early
        found = self._store.get(request.path_params["task_id"])
        return error(404, "no such task") if found is None else JSONResponse(found)

    async def _patch(self, request: Request) -> Response:
        task_id: str = request.path_params["task_id"]
        body = await read_json(request)
        response = await self._gate(request)
        if response is None:
            problem = _change_problem(body)
            if problem is not None:
                response = error(400, problem)
            else:
                code, answer = self._store.patch(task_id, body)
                response = JSONResponse(answer, status_code=code)
        record = PatchRecord(task_id, copy.deepcopy(body), response.status_code, time.monotonic())
        with self._lock:
            self._patches.append(record)
        return response

    async def _admin_state(self, request: Request) -> Response:
        return JSONResponse(self.state())
