"""The one rule for "can this JSON value be stored and sent on": used for queue items and agents.

What we keep lands in PostgreSQL text and JSONB columns and goes out again as JSON, so a value
is refused (never silently changed) when it holds:

- a NUL character (U+0000): PostgreSQL text cannot hold it and JSONB refuses ``\\u0000``;
- a lone surrogate (U+D800..U+DFFF): not Unicode, so it cannot be encoded as UTF-8 (a JSON
  decoder pairs valid surrogate escapes into one character, so any left over are lone);
- a non-finite number (``NaN``, ``Infinity``, or a float such as ``1e400`` that overflows):
  JSON has no such numbers and JSONB refuses them;
- an integer of more than 4300 digits: Python refuses to write it as JSON text;
- nesting deeper than ``MAX_DEPTH`` levels of objects and arrays. The limit keeps every
  recursive encoder and decoder on the way (json, pydantic, psycopg) far from its stack limit.

Every check here is iterative, so a hostile value cannot exhaust the stack while being judged.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from agent_dispatch.domain.model import JobSpec

MAX_DEPTH: Final = 64  # levels of objects/arrays in one stored JSON value ({} is 1 level)
MAX_INT_DIGITS: Final = 4300  # CPython's int <-> str conversion limit
_MAX_INT_BITS: Final = int(MAX_INT_DIGITS * math.log2(10))  # below this, < 4300 digits
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
_PATH_LIMIT: Final = 80


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None: 'contains a NUL character (U+0000), ...'."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "contains a NUL character (U+0000), which cannot be stored"
    return f"contains a lone surrogate (U+{ord(char):04X}), which is not valid Unicode"


def too_deep(path: str) -> str:
    """The reason for a value nested deeper than MAX_DEPTH (shared by the page decoder)."""
    return f"{path}: nested deeper than {MAX_DEPTH} levels"


def json_problem(value: Any, path: str, *, max_depth: int = MAX_DEPTH) -> str | None:
    """Why the decoded JSON `value` at `path` cannot be stored, or None when it can.

    The reason names where, e.g. 'payload.steps[3].note: contains a NUL character ...'.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
        elif isinstance(item, bool) or item is None:
            problem = None
        elif isinstance(item, int):
            too_long = item.bit_length() >= _MAX_INT_BITS
            problem = f"an integer of more than {MAX_INT_DIGITS} digits" if too_long else None
        elif isinstance(item, float):
            problem = None if math.isfinite(item) else f"not a finite number ({item})"
        elif isinstance(item, dict | list):
            if depth + 1 > max_depth:
                return too_deep(path)  # name the field: a deep path says nothing more
            problem = _push_children(stack, item, where, depth + 1)
        else:
            problem = f"not a JSON value ({type(item).__name__})"
        if problem is not None:
            return f"{where}: {problem}"
    return None


def _push_children(
    stack: list[tuple[Any, str, int]], container: dict[Any, Any] | list[Any], where: str, depth: int
) -> str | None:
    if isinstance(container, list):
        stack.extend((v, _child(where, f"[{i}]"), depth) for i, v in enumerate(container))
        return None
    for key, v in container.items():
        if not isinstance(key, str):
            return f"key {key!r} is not a string"
        if (problem := text_problem(key)) is not None:
            return f"a key {problem}"
        stack.append((v, _child(where, f".{key}"), depth))
    return None


def _child(where: str, step: str) -> str:
    # Paths are for people: cut long ones and never carry unstorable characters into a reason.
    if len(where) >= _PATH_LIMIT:
        return where if where.endswith("...") else where + "..."
    return where + storable_text(step)


def storable_text(text: str) -> str:
    """Our own diagnostic text made storable: NULs and lone surrogates become visible escapes.

    Lossy on purpose and only for messages we write (reasons, errors): data from the queue or
    agents is never changed, it is refused.
    """
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def spec_problem(spec: JobSpec) -> str | None:
    """Why a job spec cannot be stored, naming the field, or None."""
    texts = {"title": spec.title, "description": spec.description, "category": spec.category}
    for name, value in texts.items():
        if (problem := text_problem(value)) is not None:
            return f"{name}: {problem}"
    return json_problem(list(spec.tags), "tags") or json_problem(spec.payload, "payload")
