"""Workflows: a job's work as a graph of steps, each dispatched to its own agents.

Plain values and rules only (the file format is checked by pydantic in the services; this
module checks the graph): ids are unique, `needs` name existing steps, there is no cycle, and
every reference points at the job or at a step upstream of where it is used.

A reference is a dotted path into `job` (the queue task) or `steps.<id>.result|status`, with
`or` for a fallback: `{{ steps.fix.result or steps.draft.result }}`. Nothing else is read from
a template, so nothing in a workflow file can run code.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PATH = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*$")
_OR = re.compile(r"\s+or\s+")
STEP_FIELDS = ("result", "status")  # what a reference may read of a step
# Step fields that fall back to the task's own, then to the workflow's defaults.
INHERITED = ("category", "tags", "skillLevel", "maxAgents", "timeoutMs", "resultStrategy")


class WorkflowError(ValueError):
    """A workflow that cannot be registered; `place` says where, e.g. `steps[2] (fix).needs`."""

    def __init__(self, place: str, problem: str) -> None:
        super().__init__(f"{place}: {problem}")
        self.place = place
        self.problem = problem


class FailurePolicy(enum.StrEnum):
    FAIL = "fail"  # the workflow fails, naming this step
    CONTINUE = "continue"  # the step counts as done with no result
    RETRY = "retry"  # run it again, up to `retries` more times, then fail


@dataclasses.dataclass(frozen=True, slots=True)
class OnFailure:
    policy: FailurePolicy = FailurePolicy.FAIL
    retries: int = 0

    @classmethod
    def parse(cls, text: str) -> OnFailure:
        if text.startswith("retry:"):
            return cls(FailurePolicy.RETRY, int(text.removeprefix("retry:")))
        return cls(FailurePolicy(text))

    def __str__(self) -> str:
        return f"retry:{self.retries}" if self.policy is FailurePolicy.RETRY else self.policy.value


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """`when`: run the step only if the value at `ref` equals `equals`."""

    ref: str
    equals: Any

    def describe(self) -> str:
        return f"{self.ref} equals {self.equals!r}"


@dataclasses.dataclass(frozen=True, slots=True)
class StepDef:
    id: str
    needs: tuple[str, ...] = ()
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # category, tags, ...
    input: Any = dataclasses.field(default_factory=dict)
    when: Condition | None = None
    on_failure: OnFailure = OnFailure()


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowDef:
    name: str
    description: str
    steps: tuple[StepDef, ...]
    output: Any
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def step(self, step_id: str) -> StepDef:
        return next(s for s in self.steps if s.id == step_id)

    def order(self) -> list[str]:
        """Step ids, each after every step it needs (the file's order among equals)."""
        return topological_order(self)


# -- references ---------------------------------------------------------------------------


def references(template: Any) -> Iterator[str]:
    """Every dotted path in a template (strings inside lists and objects included)."""
    if isinstance(template, str):
        for match in _TEMPLATE.finditer(template):
            yield from _alternatives(match.group(1))
    elif isinstance(template, Mapping):
        for value in template.values():
            yield from references(value)
    elif isinstance(template, list):
        for value in template:
            yield from references(value)


def _alternatives(inner: str) -> list[str]:
    paths = _OR.split(inner.strip())
    for path in paths:
        if not _PATH.match(path):
            raise ValueError(f"{{{{{inner}}}}} is not a reference (dotted paths joined by 'or')")
    return paths


def lookup(path: str, context: Mapping[str, Any]) -> Any:
    """The value at a dotted path, None when any part is missing (list items by index)."""
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is None:
            return None
    return value


def _first(inner: str, context: Mapping[str, Any]) -> Any:
    for path in _alternatives(inner):
        value = lookup(path, context)
        if value is not None:
            return value
    return None


def resolve(template: Any, context: Mapping[str, Any]) -> Any:
    """Fill a template: a string that is one whole reference keeps the value's JSON type;
    references inside longer strings are pasted as text (JSON for objects)."""
    if isinstance(template, str):
        whole = _TEMPLATE.fullmatch(template.strip())
        if whole is not None:
            return _first(whole.group(1), context)
        return _TEMPLATE.sub(lambda m: _text(_first(m.group(1), context)), template)
    if isinstance(template, Mapping):
        return {k: resolve(v, context) for k, v in template.items()}
    if isinstance(template, list):
        return [resolve(v, context) for v in template]
    return template


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def from_document(doc: Mapping[str, Any]) -> WorkflowDef:
    """A definition from its stored form (the file's camelCase keys, already shape-checked)."""
    defaults = doc.get("defaults") or {}
    fallback = defaults.get("onFailure") or "fail"
    steps = []
    for raw in doc["steps"]:
        when = raw.get("when")
        steps.append(
            StepDef(
                id=raw["id"],
                needs=tuple(raw.get("needs") or ()),
                fields={k: v for k, v in raw.items() if k in INHERITED and v is not None},
                input=raw.get("input") or {},
                when=Condition(when["ref"], when.get("equals")) if when else None,
                on_failure=OnFailure.parse(raw.get("onFailure") or fallback),
            )
        )
    ids = [s.id for s in steps]
    output = doc.get("output")
    if output is None:  # no output given: every step's result by id
        output = {sid: f"{{{{ steps.{sid}.result }}}}" for sid in ids}
    return WorkflowDef(doc["name"], doc.get("description") or "", tuple(steps), output, defaults)


# -- the graph ------------------------------------------------------------------------------


def topological_order(wf: WorkflowDef) -> list[str]:
    """Kahn's algorithm, stable in file order; raises WorkflowError on a cycle."""
    pending = {s.id: set(s.needs) for s in wf.steps}
    done: list[str] = []
    while pending:
        ready = [sid for sid, needs in pending.items() if not needs]
        if not ready:
            cycle = " -> ".join(_a_cycle(pending))
            raise WorkflowError("steps", f"cycle {cycle}")
        for sid in ready:
            del pending[sid]
            done.append(sid)
        for needs in pending.values():
            needs.difference_update(ready)
    return done


def _a_cycle(pending: Mapping[str, set[str]]) -> list[str]:
    path: list[str] = []
    node = next(iter(pending))
    while node not in path:
        path.append(node)
        node = sorted(pending[node])[0]
    return [*path[path.index(node) :], node]


def upstream(wf: WorkflowDef) -> dict[str, set[str]]:
    """For each step, every step it needs directly or through others."""
    out: dict[str, set[str]] = {}
    for sid in topological_order(wf):
        s = wf.step(sid)
        out[sid] = set(s.needs).union(*(out[n] for n in s.needs)) if s.needs else set()
    return out


def _place(i: int, step: StepDef, field: str) -> str:
    return f"steps[{i}] ({step.id}).{field}"


def _check_refs(place: str, template: Any, allowed: set[str], all_ids: set[str]) -> None:
    try:
        paths = list(references(template))
    except ValueError as exc:
        raise WorkflowError(place, str(exc)) from None
    for path in paths:
        root, *rest = path.split(".")
        if root == "job":
            continue
        if root != "steps":
            raise WorkflowError(place, f"{path!r} must start with 'job.' or 'steps.'")
        if len(rest) < 2 or rest[1] not in STEP_FIELDS:
            raise WorkflowError(place, f"{path!r}: write steps.<id>.result or steps.<id>.status")
        target = rest[0]
        if target not in all_ids:
            raise WorkflowError(place, f"{path!r} names no step {target!r}")
        if target not in allowed:
            raise WorkflowError(place, f"{path!r}: step {target!r} is not upstream of this step")


def validate(wf: WorkflowDef) -> WorkflowDef:
    """Check ids, needs, cycles and references; returns `wf` or raises WorkflowError."""
    if not wf.steps:
        raise WorkflowError("steps", "a workflow needs at least one step")
    seen: set[str] = set()
    for i, s in enumerate(wf.steps):
        if not STEP_ID.match(s.id):
            raise WorkflowError(f"steps[{i}].id", f"{s.id!r} is not a step id")
        if s.id in seen:
            raise WorkflowError(f"steps[{i}].id", f"duplicate step id {s.id!r}")
        seen.add(s.id)
    for i, s in enumerate(wf.steps):
        for need in s.needs:
            if need == s.id:
                raise WorkflowError(_place(i, s, "needs"), "a step cannot need itself")
            if need not in seen:
                raise WorkflowError(_place(i, s, "needs"), f"{need!r} is not a step")
    ups = upstream(wf)  # raises on a cycle
    for i, s in enumerate(wf.steps):
        _check_refs(_place(i, s, "input"), s.input, ups[s.id], seen)
        if s.when is not None:
            _check_refs(_place(i, s, "when"), "{{ " + s.when.ref + " }}", ups[s.id], seen)
    _check_refs("output", wf.output, seen, seen)
    return wf
