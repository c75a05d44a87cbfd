"""Run blocking database work off the event loop, so concurrent agent calls keep moving."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.db.uow import UnitOfWork

T = TypeVar("T")


async def in_transaction(work: Callable[[UnitOfWork], T]) -> T:
    """Run `work(uow)` in a worker thread inside one committed transaction."""

    def run() -> T:
        with get_runtime().uow() as uow:
            result = work(uow)
            uow.commit()
            return result

    return await asyncio.to_thread(run)
