"""The workflow file: YAML read safely, its shape checked by pydantic, its graph by the domain.

Every refusal is one line naming the place (`steps[2] (fix).needs: 'revew' is not a step`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from agent_dispatch.domain.workflow import STEP_ID, WorkflowDef, WorkflowError, from_document
from agent_dispatch.domain.workflow import validate as validate_graph

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_ON_FAILURE = re.compile(r"^(fail|continue|retry:([1-9]|10))$")
Tag = Annotated[str, Field(min_length=1, max_length=100)]


class WorkflowInvalid(ValueError):
    """A workflow file that cannot be registered (one line)."""


class _Strict(BaseModel):
    # Unknown fields are refused: a typo must not silently become a default.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid")


class ResultStrategy(_Strict):
    type: Literal["first", "best-score", "quorum"]
    quorum: int | None = Field(None, ge=2, le=10)


class When(_Strict):
    ref: str = Field(min_length=1, max_length=500)
    equals: Any = None


class StepFields(_Strict):
    """What a step may set, and so what `defaults` may set for every step."""

    category: str | None = Field(None, min_length=1, max_length=100)
    tags: list[Tag] | None = Field(None, max_length=50)
    skill_level: int | None = Field(None, ge=1, le=5)
    max_agents: int | None = Field(None, ge=1, le=10)
    timeout_ms: int | None = Field(None, ge=100)
    result_strategy: ResultStrategy | None = None
    on_failure: str | None = None

    @field_validator("on_failure")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        if value is not None and not _ON_FAILURE.match(value):
            raise ValueError("must be fail, continue or retry:N (N from 1 to 10)")
        return value


class Step(StepFields):
    id: str = Field(pattern=STEP_ID.pattern)
    needs: list[str] = Field(default_factory=list, max_length=100)
    input: dict[str, Any] = Field(default_factory=dict)
    when: When | None = None


class WorkflowFile(_Strict):
    name: str = Field(pattern=NAME)
    description: str = Field("", max_length=2000)
    defaults: StepFields = Field(default_factory=StepFields)
    steps: list[Step] = Field(min_length=1, max_length=100)
    output: Any = None


def _place(loc: tuple[int | str, ...], raw: Any) -> str:
    """`steps[2] (translate).onFailure` from pydantic's ('steps', 2, 'onFailure')."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            if loc[i - 1] == "steps" and isinstance(raw, dict):
                steps = raw.get("steps")
                if isinstance(steps, list) and part < len(steps) and isinstance(steps[part], dict):
                    out += f" ({steps[part].get('id', '?')})"
        else:
            out += ("." if out else "") + str(part)
    return out or "file"


def _first_problem(exc: ValidationError, raw: Any) -> str:
    err = exc.errors(include_url=False)[0]
    where = _place(tuple(err["loc"]), raw)
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    msg = err["msg"]
    return f"{where}: {msg[:1].lower()}{msg[1:]}"


def parse(text: str) -> tuple[WorkflowDef, dict[str, Any]]:
    """The checked definition and its stored form; raises WorkflowInvalid naming the place."""
    try:
        raw = yaml.safe_load(text)  # plain data only: no tags that build objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        raise WorkflowInvalid(f"{where}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise WorkflowInvalid("file: a workflow is a mapping with name and steps")
    try:
        model = WorkflowFile.model_validate(raw)
    except ValidationError as exc:
        raise WorkflowInvalid(_first_problem(exc, raw)) from None
    doc = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["output"] = model.output  # kept even when null: "no output" means every result
    try:
        return validate_graph(from_document(doc)), doc
    except WorkflowError as exc:
        raise WorkflowInvalid(str(exc)) from None
