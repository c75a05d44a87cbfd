"""Decode a JSON page of items so that one item can never sink the others.

A page is ``{"<list_key>": [item, ...], ...}``. The fast path decodes the whole body with
``json.loads``. When that fails (an item nested past the decoder's recursion limit, an integer
of more than 4300 digits, bytes that are not UTF-8), an iterative scanner splits the body into
the raw text of each item and decodes each alone; an item that still cannot be decoded is
returned with a problem naming the member at fault, next to its decoded neighbours.

Either way, every member of every item is held to the depth rule of `domain/storable.py`
(MAX_DEPTH levels), so the paths agree on what they accept. Items without a usable id get a
fingerprint (a hash of their raw text) so a caller can recognise them again on later pages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any, Final

from agent_dispatch.domain.storable import MAX_DEPTH, text_problem, too_deep

MAX_ID_LENGTH: Final = 128
# One JSON token after optional whitespace: a string, a structural character, or a bare word
# (number, true, false, null; anything else there is left for json.loads to refuse).
_TOKEN: Final = re.compile(
    r'\s*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([{}\[\]:,])|([^\s{}\[\]:,"]+))', re.DOTALL
)
_OPENERS: Final = frozenset("{[")
_CLOSERS: Final = frozenset("}]")


class MalformedPage(ValueError):
    """The page itself (not one item) cannot be read: it has no list of items."""


class NotJSON(MalformedPage):
    """The page is not JSON at all (its structure cannot even be split into items)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One item: decoded (`problem` None), or refused with the members that could be read."""

    value: Any
    problem: str | None
    task_id: str | None  # a usable id, even when the item was refused
    fingerprint: str | None  # only without a usable id: a hash of the item's raw text


@dataclasses.dataclass(frozen=True, slots=True)
class Listing:
    items: list[Item]
    fields: dict[str, Any]  # the page's other top-level members (e.g. nextCursor)


def usable_id(item: Any) -> str | None:
    """The item's id if it can address the task in a URL and be stored, else None."""
    if isinstance(item, dict):
        task_id = item.get("id")
        if isinstance(task_id, str) and 1 <= len(task_id) <= MAX_ID_LENGTH:
            return task_id if text_problem(task_id) is None else None
    return None


def decode_listing(body: bytes, list_key: str) -> Listing:
    """The page's items, each judged alone; MalformedPage when the page has no such list."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return _decode_slowly(body, list_key)
    if not isinstance(doc, dict) or not isinstance(doc.get(list_key), list):
        raise MalformedPage(f"the page has no {list_key} list")
    values: list[Any] = doc[list_key]
    raw_texts: list[str] | None = None
    items = []
    for index, value in enumerate(values):
        task_id = usable_id(value)
        fingerprint = None
        if task_id is None:
            # Hash the raw text, as the slow path does, so an item is recognised whichever
            # path its page took; split the body only for pages that need it.
            raw_texts = raw_texts if raw_texts is not None else _item_texts(body, list_key)
            fingerprint = _fingerprint(raw_texts[index])
        items.append(Item(value, _depth_problem(value), task_id, fingerprint))
    return Listing(items, {k: v for k, v in doc.items() if k != list_key})


def _decode_slowly(body: bytes, list_key: str) -> Listing:
    text = body.decode("utf-8", "surrogateescape")  # bad bytes become lone surrogates: refused
    members, list_part = _envelope(text, list_key)
    fields = {}
    for part in members:
        try:
            fields[_key(text, part)] = json.loads(text[part.start : part.end])
        except (ValueError, RecursionError):
            raise NotJSON("a page member cannot be decoded") from None
    return Listing([_decode_item(text, p) for p in _parts(text, list_part.start)], fields)


def _decode_item(text: str, part: _Part) -> Item:
    raw = text[part.start : part.end]
    if part.depth <= MAX_DEPTH + 1:  # the item's own level plus MAX_DEPTH in its members
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            pass
        else:
            task_id = usable_id(value)
            fingerprint = None if task_id is not None else _fingerprint(raw)
            return Item(value, _depth_problem(value), task_id, fingerprint)
    if not raw.startswith("{"):
        problem = too_deep("item") if part.depth > MAX_DEPTH else "item: not decodable JSON"
        return Item(None, problem, None, _fingerprint(raw))
    # Decode member by member: the reason can name the member, and the id can still be read.
    value, problems = {}, []
    for member in _parts(text, part.start):
        name = _key(text, member)
        if member.depth > MAX_DEPTH:
            problems.append(too_deep(name))
            continue
        try:
            value[name] = json.loads(text[member.start : member.end])
        except (ValueError, RecursionError) as exc:
            problems.append(f"{name}: not decodable JSON ({_first_line(exc)})")
    task_id = usable_id(value)
    fingerprint = None if task_id is not None else _fingerprint(raw)
    return Item(value, "; ".join(problems) or "item: not decodable JSON", task_id, fingerprint)


def _depth_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None if _depth(value, MAX_DEPTH + 1) <= MAX_DEPTH + 1 else too_deep("item")
    for name, member in value.items():
        if _depth(member, MAX_DEPTH) > MAX_DEPTH:
            return too_deep(name)
    return None


def _depth(value: Any, limit: int) -> int:
    """Levels of containers in `value`, counted up to limit + 1 (iterative: no recursion)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return deepest


@dataclasses.dataclass(frozen=True, slots=True)
class _Part:
    key: tuple[int, int] | None  # span of the member's key string (objects only)
    start: int
    end: int
    depth: int  # container levels inside the value (0 for a scalar)


def _envelope(text: str, list_key: str) -> tuple[list[_Part], _Part]:
    members = _parts(text, 0)
    found = [m for m in members if _key(text, m) == list_key]
    if len(found) != 1 or not text.startswith("[", found[0].start):
        raise MalformedPage(f"the page has no {list_key} list")
    return [m for m in members if m is not found[0]], found[0]


def _item_texts(body: bytes, list_key: str) -> list[str]:
    text = body.decode("utf-8", "surrogateescape")
    _, list_part = _envelope(text, list_key)
    return [text[p.start : p.end] for p in _parts(text, list_part.start)]


def _parts(text: str, pos: int) -> list[_Part]:
    """The top-level values of the object or array at text[pos:], without decoding them."""
    first = _TOKEN.match(text, pos)
    if first is None or first.group(2) not in _OPENERS:
        raise NotJSON("expected a JSON object or array")
    is_object, pos = first.group(2) == "{", first.end()
    parts: list[_Part] = []
    depth, key, colon, start, end, deepest = 1, None, False, -1, -1, 0
    while True:
        token = _TOKEN.match(text, pos)
        if token is None:
            raise NotJSON(f"unreadable JSON at character {pos}")
        string, punct, _bare = token.groups()
        tok_start, pos = token.start(token.lastindex or 0), token.end()
        if depth > 1:  # inside one value: only count levels
            depth += 1 if punct in _OPENERS else -1 if punct in _CLOSERS else 0
            deepest, end = max(deepest, depth - 1), pos
        elif punct == "," or punct in _CLOSERS:
            if start >= 0:
                parts.append(_Part(key, start, end, deepest))
            elif punct == "," or key is not None:
                raise NotJSON(f"a missing value at character {tok_start}")
            key, colon, start, deepest = None, False, -1, 0
            if punct in _CLOSERS:
                return parts
        elif is_object and key is None:
            if string is None:
                raise NotJSON(f"expected a member name at character {tok_start}")
            key = (tok_start, pos)
        elif is_object and not colon:
            if punct != ":":
                raise NotJSON(f"expected ':' at character {tok_start}")
            colon = True
        elif start >= 0 or punct == ":":
            raise NotJSON(f"expected ',' at character {tok_start}")
        else:
            start, end = tok_start, pos
            if punct in _OPENERS:
                depth, deepest = 2, 1


def _key(text: str, part: _Part) -> str:
    if part.key is None:
        raise MalformedPage("expected an object")
    name = json.loads(text[part.key[0] : part.key[1]])
    return name if isinstance(name, str) else ""


def _fingerprint(raw: str) -> str:
    return hashlib.sha256(raw.strip().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _first_line(exc: BaseException) -> str:
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    if text.startswith("Exceeds the limit"):  # CPython's int digit limit, said plainly
        return "an integer of more than 4300 digits"
    return text[:120]
