"""Store queue tasks as jobs one by one: an item the database refuses is refused alone.

The queue client already refuses items that break the storability rule (services.storable);
this is the defence in depth behind it. Each insert runs in its own savepoint, so a data
error (a NUL the client missed, a number out of a column's range) rolls back that item only
and its neighbours are stored. Errors that say the database itself is in trouble (connection
lost, server shutting down) are not data errors: they propagate, so an outage never turns
into tasks reported FAILED.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from db.uow import UnitOfWork
from domain.model import JobSpec
from services.storable import json_problem, storable_text, text_problem

# Raised while binding a value (before the server sees it): serialising JSON, encoding text.
_BIND_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


@dataclasses.dataclass(frozen=True, slots=True)
class Refused:
    queue_task_id: str
    reason: str  # storable text


def spec_problem(spec: JobSpec) -> str | None:
    """Why a job spec cannot be stored, naming the field, or None."""
    texts = {"title": spec.title, "description": spec.description, "category": spec.category}
    for name, value in texts.items():
        if (problem := text_problem(value)) is not None:
            return f"{name}: {problem}"
    return json_problem(list(spec.tags), "tags") or json_problem(spec.payload, "payload")


def store_each(
    uow: UnitOfWork, items: Iterable[tuple[JobSpec, dt.datetime | None]]
) -> list[Refused]:
    """Intake every item (idempotent per queue task id); return the ones that were refused."""
    refused = []
    for spec, created_at in items:
        problem = spec_problem(spec)
        if problem is None:
            try:
                with uow.session.begin_nested():
                    uow.jobs.intake(spec, created_at)
            except (DataError, IntegrityError) as exc:
                problem = f"the database refused it: {_first_line(exc.orig)}"
            except DBAPIError:
                raise  # not about this item's data
            except StatementError as exc:
                if not isinstance(exc.orig, _BIND_ERRORS):
                    raise
                problem = f"cannot be stored: {_first_line(exc.orig)}"
            except _BIND_ERRORS as exc:
                problem = f"cannot be stored: {_first_line(exc)}"
        if problem is not None:
            refused.append(Refused(spec.queue_task_id, storable_text(problem)))
    return refused


def _first_line(exc: BaseException | None) -> str:
    text = str(exc) if exc is not None else ""
    return (text.splitlines() or ["unknown error"])[0][:200]
