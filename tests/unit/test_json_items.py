"""clients/json_items.py (page decoding item by item) and domain/storable.py (the storage rule)."""

from __future__ import annotations

import json

import pytest

from agent_dispatch.clients.json_items import MalformedPage, decode_listing
from agent_dispatch.domain.storable import MAX_DEPTH, json_problem, storable_text, text_problem


def item(task_id: str | None = "t1", **fields: object) -> str:
    raw: dict[str, object] = {"title": "x", "category": "general", "status": "OPEN", **fields}
    if task_id is not None:
        raw["id"] = task_id
    return json.dumps(raw)


def nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def with_payload(task_id: str, payload_text: str) -> str:
    return item(task_id, payload="@@")[:-1].replace('"@@"', payload_text) + "}"


def page(*items: str, cursor: str | None = "next") -> bytes:
    return f'{{"tasks": [{", ".join(items)}], "nextCursor": {json.dumps(cursor)}}}'.encode()


def test_a_plain_page_decodes_every_item_and_keeps_the_other_members() -> None:
    listing = decode_listing(page(item("a"), item("b")), "tasks")

    assert [i.value["id"] for i in listing.items] == ["a", "b"]
    assert all(i.problem is None and i.fingerprint is None for i in listing.items)
    assert listing.fields == {"nextCursor": "next"}


def test_an_item_too_deep_for_the_decoder_is_refused_alone_and_keeps_its_id() -> None:
    body = page(item("good-1"), with_payload("deep", nested(3000)), item("good-2"))

    listing = decode_listing(body, "tasks")

    good, deep, good2 = listing.items
    assert (good.value["id"], good2.value["id"]) == ("good-1", "good-2")
    assert good.problem is None and good2.problem is None
    assert deep.problem == f"payload: nested deeper than {MAX_DEPTH} levels"
    assert deep.task_id == "deep"
    assert listing.fields == {"nextCursor": "next"}


def test_the_depth_rule_is_the_same_on_both_paths() -> None:
    at_limit = with_payload("ok", nested(MAX_DEPTH))
    over = with_payload("over", nested(MAX_DEPTH + 1))
    forcing_slow_path = with_payload("huge", "1" + "0" * 5000)

    for body in (page(at_limit, over), page(at_limit, over, forcing_slow_path)):
        ok, too_deep, *_ = decode_listing(body, "tasks").items
        assert ok.problem is None
        assert too_deep.problem == f"payload: nested deeper than {MAX_DEPTH} levels"


def test_a_number_the_decoder_refuses_names_its_member() -> None:
    body = page(item("a"), with_payload("huge", '{"n": ' + "9" * 5000 + "}"))

    good, huge = decode_listing(body, "tasks").items

    assert good.problem is None
    assert huge.problem == "payload: not decodable JSON (an integer of more than 4300 digits)"
    assert huge.task_id == "huge"


def test_bytes_that_are_not_utf8_become_lone_surrogates_in_that_item_only() -> None:
    body = page(item("a"), item("b", title="@@")).replace(b"@@", b"\xff\xfe")

    good, bad = decode_listing(body, "tasks").items

    assert good.value["title"] == "x"
    assert text_problem(bad.value["title"]) is not None


def test_an_item_without_an_id_gets_the_same_fingerprint_on_either_path() -> None:
    no_id = item(None, title="no id")
    fast = decode_listing(page(item("a"), no_id), "tasks").items[1]
    slow = decode_listing(page(with_payload("d", nested(3000)), no_id), "tasks").items[1]

    assert fast.task_id is None and fast.fingerprint is not None
    assert fast.fingerprint == slow.fingerprint
    other = decode_listing(page(item(None, title="another")), "tasks").items[0]
    assert other.fingerprint != fast.fingerprint


def test_an_id_that_cannot_address_or_be_stored_is_not_usable() -> None:
    listing = decode_listing(page(item("a\u0000b"), item("x" * 129), item("ok")), "tasks")

    assert [i.task_id for i in listing.items] == [None, None, "ok"]
    assert listing.items[0].fingerprint is not None


@pytest.mark.parametrize(
    "body",
    [b"<html>", b'{"data": []}', b'{"tasks": {"a": 1}}', b'{"tasks": [1, 2', b"[]"],
    ids=["not json", "no tasks", "tasks not a list", "cut short", "not an object"],
)
def test_a_page_that_is_not_a_page_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedPage):
        decode_listing(body, "tasks")


def test_the_storage_rule_names_the_place_and_the_character() -> None:
    assert text_problem("fine ünïcode 🙂") is None
    assert text_problem("a\x00b") == "contains a NUL character (U+0000), which cannot be stored"
    assert "lone surrogate (U+D800)" in (text_problem("a\ud800") or "")
    value = {"steps": [{"note": "ok"}, {"note": "bad\x00"}]}
    assert json_problem(value, "payload") == (
        "payload.steps[1].note: contains a NUL character (U+0000), which cannot be stored"
    )
    assert json_problem({"x": float("inf")}, "payload") == "payload.x: not a finite number (inf)"
    assert json_problem({"k\x00": 1}, "payload") == (
        "payload: a key contains a NUL character (U+0000), which cannot be stored"
    )
    assert json_problem({"n": 10**5000}, "payload") == (
        "payload.n: an integer of more than 4300 digits"
    )
    assert json_problem({"n": 10**100, "f": 1.5, "b": True, "z": None}, "payload") is None


def test_the_storage_rule_judges_extreme_nesting_without_recursing() -> None:
    deep: list[object] = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]

    assert json_problem(deep, "payload") == f"payload: nested deeper than {MAX_DEPTH} levels"


def test_our_own_messages_are_made_storable() -> None:
    assert storable_text("id a\x00b\ud800") == "id a\\u0000b\\ud800"
    assert text_problem(storable_text("\x00\udfff")) is None
