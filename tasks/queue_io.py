"""Queue I/O tasks: fetch a page of OPEN tasks, reject bad items, report job status."""

from __future__ import annotations

import dataclasses
import datetime as dt

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.wiring import get_runtime
from clients.errors import QueueError, TaskConflict, TaskNotFound
from clients.queue import RejectedItem
from db.models import QueueRejection
from db.uow import UnitOfWork
from domain.model import JobSpec
from services.storable import storable_text, text_problem
from tasks.dbio import in_transaction


@dataclasses.dataclass(frozen=True, slots=True)
class Incoming:
    spec: JobSpec
    created_at: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    tasks: tuple[Incoming, ...]
    rejected: tuple[RejectedItem, ...]
    next_cursor: str | None
    error: str | None = None  # the queue could not be read: the run stops taking jobs


# Queue calls retry inside the client (honouring Retry-After), so Prefect retries stay off:
# stacking both would multiply waits and repeat conditional PATCHes needlessly.
@task(name="fetch-open-tasks", cache_policy=NO_CACHE, task_run_name="fetch page {page_no}")
async def fetch_open_page(cursor: str | None, limit: int, page_no: int) -> Page:
    """One page of OPEN tasks; a queue failure comes back as `error` (one line, no traceback)."""
    try:
        page = await get_runtime().queue().list_tasks("OPEN", limit=limit, cursor=cursor)
    except QueueError as exc:
        get_run_logger().error("remote queue: %s", exc)
        return Page((), (), None, error=str(exc))
    tasks = tuple(Incoming(t.to_job_spec(), t.created_at) for t in page.valid if t.status == "OPEN")
    return Page(tasks, tuple(page.rejected), page.next_cursor)


@task(name="reject-bad-items", cache_policy=NO_CACHE)
async def reject_items(items: tuple[RejectedItem, ...]) -> int:
    """Keep a record of each bad item and report it FAILED on the queue when it has an id."""
    logger = get_run_logger()

    def store(uow: UnitOfWork) -> list[int]:
        # The reason is ours and made storable; an id the database cannot hold is left out
        # (the client never calls such an id usable, this guards other callers).
        rows = [
            QueueRejection(
                queue_task_id=i.task_id if i.task_id and not text_problem(i.task_id) else None,
                reason=storable_text(i.reason),
            )
            for i in items
        ]
        uow.session.add_all(rows)
        uow.session.flush()
        return [r.id for r in rows]

    row_ids = await in_transaction(store)
    reported = 0
    for item, row_id in zip(items, row_ids, strict=True):
        logger.warning("rejected queue item %s: %s", item.task_id or "(no id)", item.reason)
        if item.task_id is None:
            continue
        try:
            ok = await get_runtime().queue().reject(item)
        except QueueError as exc:
            logger.warning("could not report rejection of %s: %s", item.task_id, exc)
            continue
        if ok:
            reported += 1

            def mark(uow: UnitOfWork, rid: int = row_id) -> None:
                row = uow.session.get(QueueRejection, rid)
                if row is not None:
                    row.reported = True

            await in_transaction(mark)
    return reported


async def report_status(
    queue_task_id: str,
    status: str,
    expected: str,
    *,
    result: object = None,
    agent_id: str | None = None,
    error: str | None = None,
) -> str | None:
    """PATCH the queue; returns None on success, else a one-line reason (kept for the sweep)."""
    queue = get_runtime().queue()
    try:
        if status == "COMPLETED":
            await queue.change_status(
                queue_task_id, status, expected, result=result, agent_id=agent_id
            )
        else:
            await queue.change_status(queue_task_id, status, expected, error=error)
    except TaskConflict as exc:
        if exc.current_status == status:
            return None
        return str(exc)
    except (TaskNotFound, QueueError) as exc:
        return str(exc)
    return None
