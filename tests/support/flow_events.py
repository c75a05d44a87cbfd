"""Reading what a flow emitted: the related resources of an event, and the task runs that
Prefect's own task-run state events describe (what its server builds the UI's runs from)."""

from __future__ import annotations

from prefect.events.schemas.events import Event


def related(event: Event, role: str) -> list[str]:
    return [r.id for r in event.related if r.role == role]


def task_runs(events: list[Event]) -> dict[str, tuple[str, str, str | None]]:
    """Task run id -> (name, last state, its message), from Prefect's task-run events."""
    runs: dict[str, tuple[str, str, str | None]] = {}
    for e in events:
        if e.event.startswith("prefect.task-run."):
            state = e.payload.get("validated_state") or {}
            runs[e.resource.id] = (
                e.resource["prefect.resource.name"],
                e.event.rsplit(".", 1)[1],
                state.get("message"),
            )
    return runs
