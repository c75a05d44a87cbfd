"""Queue I/O as Prefect task runs: one per page read, one per batch of rejected items."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.clients.queue import RejectedItem
from agent_dispatch.services import queue_io
from agent_dispatch.services.queue_io import Page


# Queue calls retry inside the client (honouring Retry-After), so Prefect retries stay off:
# stacking both would multiply waits and repeat conditional PATCHes needlessly.
# Pages carry job payloads: kept in memory, never in a result store.
@task(
    name="fetch-open-tasks",
    cache_policy=NO_CACHE,
    persist_result=False,
    task_run_name="fetch page {page_no}",
)
async def fetch_open_page(cursor: str | None, limit: int, page_no: int) -> Page:
    page = await queue_io.fetch_open_page(get_runtime(), cursor, limit)
    if page.error is not None:
        get_run_logger().error("remote queue: %s", page.error)
    return page


@task(name="reject-bad-items", cache_policy=NO_CACHE, persist_result=False)
async def reject_items(items: tuple[RejectedItem, ...]) -> int:
    """Keep a record of each bad item and report it FAILED on the queue when it has an id."""
    return await queue_io.reject_items(get_runtime(), items)
