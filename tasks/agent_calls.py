"""One Prefect task run per agent call, its state mapped from how the call ended:
Completed with the outcome, Failed (no traceback) with the outcome as data, or Cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.runtime import task_run
from prefect.states import Cancelled, Completed, Failed

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.domain.model import AgentOutcome
from agent_dispatch.domain.statuses import AgentRunStatus
from agent_dispatch.services.calling import CallContext, call_agent
from agent_dispatch.services.racing import StartCall


@task(
    name="call-agent",
    cache_policy=NO_CACHE,
    persist_result=False,  # agent answers never go to a result store
    task_run_name="{ctx.assignment.agent_name} <- {ctx.queue_task_id}",
)
async def call_agent_task(ctx: CallContext, stop: asyncio.Event) -> State[Any]:
    """Call one agent until it answers, fails, times out, or the race stops it."""
    end = await call_agent(get_runtime(), ctx, stop, str(task_run.id))
    outcome = end.outcome
    if outcome is None or outcome.status is AgentRunStatus.CANCELLED:
        return Cancelled(message=end.message)
    if outcome.status is not AgentRunStatus.COMPLETED:
        get_run_logger().warning("%s", end.message)
        # A Failed state (not an exception) marks the run Failed in the UI without a traceback.
        return Failed(message=end.message, data=outcome)
    # The state's message says how it went, as a Cancelled or Failed one does: a log line
    # more per call would cost the Prefect server a row for what the UI already shows.
    return Completed(message=end.message, data=outcome)


async def _outcome_of(state: State[Any]) -> AgentOutcome | None:
    if state.is_completed():
        value = await state.result()  # type: ignore[misc]
        return value if isinstance(value, AgentOutcome) else None
    if state.is_failed():
        data = await state.result(raise_on_failure=False)  # type: ignore[misc]
        return data if isinstance(data, AgentOutcome) else None
    return None  # cancelled, or crashed


def traced_calls() -> StartCall:
    """Agent calls for the race, each as a `call-agent` task run."""

    async def start(ctx: CallContext, stop: asyncio.Event) -> AgentOutcome | None:
        # An async task called in an async flow returns a coroutine; Prefect's typing says State.
        state = await cast(
            Coroutine[Any, Any, State[Any]], call_agent_task(ctx, stop, return_state=True)
        )
        return await _outcome_of(state)

    return start
