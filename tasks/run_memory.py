"""Keeping a long dispatch run's memory flat under Prefect.

A flow run keeps, in `FlowRunContext.run_results`, a copy of the final state of every task run
it made, keyed by the `id()` of each result and of each field of a result model, so that a
later task given one of those objects as a parameter can be drawn downstream of it. Nothing
drops them before the flow run ends (`cache_result_in_memory=False` only stops the state
holding the result itself; Prefect issue #12668): measured here, about 12 KB per job with a
task run per step, growing for as long as a run keeps taking jobs.

In DISPATCH_MODE=traced and lean no task run's result is ever another task run's parameter
(agent calls answer the race, a lean job's state ends with it), so once a job has ended its
task runs' links can never be looked up again; `forget_ended_results` drops them. In
DISPATCH_MODE=steps a job's plan and take feed its next task runs and the UI draws those
links, so they are kept there (that mode trades memory for the view).
"""

from __future__ import annotations

from prefect.context import FlowRunContext

from agent_dispatch.bootstrap import get_runtime


def forget_ended_results() -> int:
    """Drop this flow run's links from task results to their final states (all of them:
    a link is made when a task run ends), unless in steps mode; how many were dropped.
    Outside a flow run: 0."""
    ctx = FlowRunContext.get()
    if ctx is None or get_runtime().settings.dispatch_mode == "steps":
        return 0
    dropped = len(ctx.run_results)
    ctx.run_results.clear()
    return dropped
