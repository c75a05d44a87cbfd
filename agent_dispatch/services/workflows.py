"""The workflow registry: add (checked), list, show, remove (refused while runs are open).

Plain database work, so these are synchronous: the CLI and the HTTP API call them directly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from agent_dispatch.domain.workflow import WorkflowDef, from_document
from agent_dispatch.services.deps import Deps
from agent_dispatch.services.workflow_file import WorkflowInvalid, parse


class WorkflowRefused(ValueError):
    """A registry request that cannot be done (one line: unknown name, open runs, exists)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowView:
    name: str
    description: str
    steps: tuple[str, ...]
    open_runs: int
    updated_at: dt.datetime
    definition: dict[str, Any]
    source: str

    def as_dict(self, source: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "steps": list(self.steps),
            "openRuns": self.open_runs,
            "updatedAt": self.updated_at,
            "definition": self.definition,
        }
        if source:
            data["source"] = self.source
        return data

    @property
    def workflow(self) -> WorkflowDef:
        return from_document(self.definition)


def add_workflow(deps: Deps, text: str, *, replace: bool = False) -> tuple[WorkflowDef, bool]:
    """Check and register a workflow file; returns it and whether it is new.

    Raises WorkflowInvalid (naming the place) or WorkflowRefused (the name is taken and
    `replace` was not asked). Runs under way keep the definition they started with.
    """
    wf, doc = parse(text)
    with deps.uow() as uow:
        if not replace and uow.workflows.get(wf.name) is not None:
            raise WorkflowRefused(f"workflow {wf.name!r} exists; --replace to change it")
        created = uow.workflows.save(wf.name, wf.description, doc, text)
        uow.commit()
    return wf, created


def list_workflows(deps: Deps) -> list[WorkflowView]:
    with deps.uow() as uow:
        return [
            WorkflowView(
                w.name,
                w.description,
                tuple(s["id"] for s in w.definition["steps"]),
                uow.workflows.open_jobs(w.name),
                w.updated_at,
                w.definition,
                w.source,
            )
            for w in uow.workflows.list()
        ]


def get_workflow(deps: Deps, name: str) -> WorkflowView:
    found = next((w for w in list_workflows(deps) if w.name == name), None)
    if found is None:
        raise WorkflowRefused(f"no workflow {name!r}")
    return found


def remove_workflow(deps: Deps, name: str) -> None:
    """Unregister; refused while a queue task naming it is not finished."""
    with deps.uow() as uow:
        if uow.workflows.get(name) is None:
            raise WorkflowRefused(f"no workflow {name!r}")
        open_runs = uow.workflows.open_jobs(name)
        if open_runs:
            raise WorkflowRefused(f"workflow {name!r} has {open_runs} open run(s); not removed")
        uow.workflows.remove(name)
        uow.commit()


__all__ = [
    "WorkflowInvalid",
    "WorkflowRefused",
    "WorkflowView",
    "add_workflow",
    "get_workflow",
    "list_workflows",
    "remove_workflow",
]
