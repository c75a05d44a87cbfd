"""Hostile queue pages through the real client and intake on PostgreSQL: only poison is refused.

A property test: pages mix valid tasks with hostile ones (NULs and lone surrogates in every
string field, nesting far past any recursion limit, numbers JSON libraries refuse, wrong
types, ids that cannot address a task). Every valid task must come out stored, unchanged;
every hostile one must be refused alone with a storable reason, or ignored as not OPEN.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.clients import RemoteQueueClient
from agent_dispatch.clients.queue import TaskPage
from agent_dispatch.db.models import Job, QueueRejection
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.storable import text_problem

pytestmark = [pytest.mark.postgres]

EXAMPLES = 40
MAX_ITEMS = 12
_numbers = itertools.count()

safe_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(-1e6, 1e6, allow_nan=False)
    | safe_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(safe_text, inner, max_size=3),
    max_leaves=8,
)
STRING_FIELDS = ("id", "title", "description", "category", "tag", "payload value", "payload key")
POISON = ("\x00", "\ud800", "\udfff", "a\x00b", "x\udc80y")
# Values each field must refuse (wrong type, out of range, or out of an int4 column).
WRONG: dict[str, tuple[object, ...]] = {
    "title": ([1], 2**40, {"a": 1}, 0, None, 1.5, ""),
    "tags": ([1], "x", {"a": 1}, 0, None, [""]),
    "payload": ([1], "x", 2**40, 0, None, 1.5),
    "skillLevel": ("x", 2**40, 0, 6, None, 1.5, [1]),
    "timeoutMs": ("x", 2**40, 0, 1.5, [1]),
}


@st.composite
def valid_task(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": f"ok-{next(_numbers)}",
        "title": draw(safe_text.filter(bool)),
        "description": draw(safe_text),
        "category": draw(safe_text.filter(bool)),
        "tags": draw(st.lists(safe_text.filter(bool), max_size=3)),
        "payload": draw(st.dictionaries(safe_text, json_values, max_size=4)),
        "status": "OPEN",
        "createdAt": "2026-01-01T00:00:00Z",
    }


@st.composite
def hostile_task(draw: st.DrawFn) -> tuple[str, str | None]:
    """(the item's JSON text, the id a usable report would carry or None)."""
    task = draw(valid_task())
    task["id"] = task["id"].replace("ok-", "bad-")
    kind = draw(st.sampled_from(("poison string", "raw payload", "wrong type", "bad id")))
    raw_payload = None
    if kind == "poison string":
        field, poison = draw(st.sampled_from(STRING_FIELDS)), draw(st.sampled_from(POISON))
        if field == "tag":
            task["tags"] = [*task["tags"], poison]
        elif field == "payload value":
            task["payload"] = {"k": [{"deep": poison}]}
        elif field == "payload key":
            task["payload"] = {poison: 1}
        else:
            key = field
            task[key] = draw(st.sampled_from((poison, f"{task[key]}{poison}")))
    elif kind == "raw payload":
        levels = draw(st.integers(65, 3000))
        raw_payload = draw(
            st.sampled_from(
                (
                    '{"a":' * levels + "0" + "}" * levels,
                    "[" * levels + "]" * levels,
                    '{"n": ' + "9" * draw(st.integers(4301, 6000)) + "}",
                    '{"x": 1e400}',
                    '{"x": -Infinity}',
                    '{"x": NaN}',
                )
            )
        )
    elif kind == "wrong type":
        field = draw(st.sampled_from(sorted(WRONG)))
        task[field] = draw(st.sampled_from(WRONG[field]))
    else:
        task["id"] = draw(st.sampled_from(("", "x" * 129, 7, None)))
    text = json.dumps(task)  # ASCII escapes carry NULs and lone surrogates verbatim
    if raw_payload is not None:
        text = text.replace(json.dumps(task["payload"]), raw_payload, 1)
    usable = task["id"] if isinstance(task["id"], str) and 1 <= len(task["id"]) <= 128 else None
    if usable is not None and text_problem(usable) is not None:
        usable = None
    return text, usable


def list_page(texts: list[str]) -> TaskPage:
    body = ('{"tasks":[' + ",".join(texts) + '],"nextCursor":null}').encode()

    async def read() -> TaskPage:
        transport = httpx.MockTransport(lambda _: httpx.Response(200, content=body))
        async with RemoteQueueClient("http://q.test", "t", transport=transport) as client:
            return await client.list_tasks()

    return asyncio.run(read())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one database for all examples; ids are unique
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    st.lists(
        st.one_of(
            valid_task().map(lambda t: ("valid", t)), hostile_task().map(lambda h: ("bad", h))
        ),
        min_size=1,
        max_size=MAX_ITEMS,
    )
)
def test_hostile_items_are_refused_alone_and_every_valid_item_is_stored_unchanged(
    runtime: Runtime, items: list[tuple[str, Any]]
) -> None:
    texts = [json.dumps(x) if kind == "valid" else x[0] for kind, x in items]
    valid = {x["id"]: x for kind, x in items if kind == "valid"}

    page = list_page(texts)

    listed = {t.id: t for t in page.valid}
    assert set(valid) <= set(listed)
    open_hostile = [t for t in page.valid if t.id not in valid and t.status == "OPEN"]
    assert open_hostile == [], "a hostile item passed the client"
    reported = {r.task_id for r in page.rejected if r.task_id is not None}
    assert reported == {x[1] for kind, x in items if kind == "bad" and x[1] is not None} - set(
        listed
    )
    with runtime.uow() as uow:
        refused = uow.jobs.intake_each((listed[i].to_job_spec(), None) for i in valid)
        uow.session.add_all(
            QueueRejection(queue_task_id=r.task_id, reason=r.reason) for r in page.rejected
        )
        uow.commit()
    assert refused == []
    with runtime.uow() as uow:
        for task_id, sent in valid.items():
            job = uow.jobs.find(task_id)
            assert job is not None
            stored = (job.title, job.description, job.category, job.tags, job.payload)
            assert stored == (
                sent["title"],
                sent["description"],
                sent["category"],
                sent["tags"],
                sent["payload"],
            )


def test_an_item_the_database_refuses_is_refused_alone_in_its_savepoint(runtime: Runtime) -> None:
    specs = [
        JobSpec("before", "t", "general"),
        JobSpec("nul", "t", "general", description="a\x00b"),  # caught before the insert
        JobSpec("int4", "t", "general", timeout_ms=2**40),  # refused by PostgreSQL itself
        JobSpec("after", "t", "general"),
    ]

    with runtime.uow() as uow:
        refused = uow.jobs.intake_each((s, None) for s in specs)
        uow.commit()

    assert [task_id for task_id, _ in refused] == ["nul", "int4"]
    assert refused[0][1].startswith("description: contains a NUL character (U+0000)")
    assert refused[1][1].startswith("the database refused it: integer out of range")
    with runtime.uow() as uow:
        stored = sorted(j.queue_task_id for j in uow.session.query(Job).all())
    assert stored == ["after", "before"]
