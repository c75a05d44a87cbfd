"""How a job's steps run under Prefect, by DISPATCH_MODE; each hands `dispatch_one` its steps.

- traced (default), `TracedSteps`: each agent call is a task run of its own (the fan-out, the
  winner and the Cancelled losers on the flow run's page); plan, take and finish are plain
  service calls in the flow run. A task run costs milliseconds of CPU in client and server,
  so this is Prefect's own floor (one task run per agent call) plus the database's work.
- steps, `TaskRunSteps`: every step a task run too (plan, take, finish, release, end), named
  after the job: three more task runs per job, for operators who want each step in the UI.
- lean: the whole of one job, steps and agent calls as plain coroutines, inside one
  `dispatch-job` task run whose state carries the job's outcome."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.runtime import task_run
from prefect.states import Completed, Failed
from prefect.utilities.annotations import quote

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services import finishing, intake, planning, taking
from agent_dispatch.services.dispatching import JobLine, NotFinished, PlainSteps, dispatch_one
from agent_dispatch.services.finishing import JobEnd
from agent_dispatch.services.intake import Claim, Intake
from agent_dispatch.services.planning import Plan
from agent_dispatch.services.queue_io import Incoming
from agent_dispatch.services.racing import RaceResult, race
from agent_dispatch.services.taking import NotTaken, Taken
from agent_dispatch.tasks.agent_calls import traced_calls

# Every step: no cache, and results kept in memory only. They carry job payloads and agent
# answers, which must not reach a result store even where a worker sets
# PREFECT_RESULTS_PERSIST_BY_DEFAULT=true.


@task(name="store-and-lease", cache_policy=NO_CACHE, persist_result=False)
async def store_and_lease(incoming: tuple[Incoming, ...], limit: int) -> Intake:
    return await intake.store_and_lease(get_runtime(), incoming, limit)


@task(name="lease-rescued-jobs", cache_policy=NO_CACHE, persist_result=False)
async def lease_rescued(limit: int) -> list[Claim]:
    return await intake.lease_rescued(get_runtime(), limit)


@task(
    name="plan",
    task_run_name="plan {claim.spec.queue_task_id} #{round_no}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
async def plan_job(claim: Claim, round_no: int = 1) -> Plan:
    return await planning.plan_job(get_runtime(), claim)


@task(
    name="take",
    task_run_name="take {claim.spec.queue_task_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
async def take_job(claim: Claim, plan: Plan, flow_run_id: str | None) -> Taken | NotTaken:
    return await taking.take_job(get_runtime(), claim, plan, flow_run_id)


@task(
    name="finish",
    task_run_name="finish {taken.claim.spec.queue_task_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
async def finish_job(
    taken: Taken,
    winner_row_id: str | None,
    first_result_at: dt.datetime | None,
    queue_told: bool = False,
) -> JobEnd:
    return await finishing.finish_job(
        get_runtime(), taken, winner_row_id, first_result_at, queue_told
    )


@task(
    name="end-unstarted",
    task_run_name="{status} {claim.spec.queue_task_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
async def end_job(claim: Claim, status: JobStatus, reason: str) -> JobEnd:
    return await finishing.end_unstarted(get_runtime(), claim, status, reason)


@task(
    name="release",
    task_run_name="release {claim.spec.queue_task_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
async def release_job(claim: Claim, reason: str) -> None:
    await planning.release_job(get_runtime(), claim, reason)


class TracedSteps(PlainSteps):
    """The steps as plain service calls; every agent call a task run of its own."""

    def __init__(self, flow_run_id: str | None) -> None:
        super().__init__(get_runtime(), flow_run_id)

    async def intake(self, incoming: tuple[Incoming, ...], limit: int) -> Intake:
        """Store a page and lease what fits, as a plain call. A run takes in a page each time
        jobs end (about once per two jobs at 20 at once): as a task run each, it cost more
        than the intake's own work."""
        return await intake.store_and_lease(self.deps, incoming, limit)

    async def race(self, taken: Taken) -> RaceResult:
        # The race runs in the flow (it only waits); each call inside it is a task run.
        return await race(
            self.deps, taken, traced_calls(), on_decided=finishing.tell_winner(self.deps, taken)
        )


class TaskRunSteps:
    """Every step a task run and every agent call a task run of its own (the UI shows all)."""

    def __init__(self, flow_run_id: str | None) -> None:
        self.flow_run_id = flow_run_id

    async def intake(self, incoming: tuple[Incoming, ...], limit: int) -> Intake:
        """Store a page and lease what fits, as a `store-and-lease` task run."""
        # quote(): Prefect would walk (and rebuild) every item of a large page looking for
        # upstream futures; a page of 500 costs ~100 ms per task run that way.
        page = cast(tuple[Incoming, ...], quote(incoming))
        taken: Intake = await store_and_lease(page, limit)
        return taken

    async def plan(self, claim: Claim, round_no: int) -> Plan:
        return await plan_job(claim, round_no)

    async def take(self, claim: Claim, plan: Plan) -> Taken | NotTaken:
        return await take_job(claim, plan, self.flow_run_id)

    async def race(self, taken: Taken) -> RaceResult:
        # The race runs in the flow (it only waits); each call inside it is a task run.
        deps = get_runtime()
        return await race(
            deps, taken, traced_calls(), on_decided=finishing.tell_winner(deps, taken)
        )

    async def finish(
        self,
        taken: Taken,
        winner_row_id: str | None,
        first_at: dt.datetime | None,
        queue_told: bool,
    ) -> JobEnd:
        return await finish_job(taken, winner_row_id, first_at, queue_told)

    async def release(self, claim: Claim, reason: str) -> None:
        await release_job(claim, reason)

    async def end(self, claim: Claim, status: JobStatus, reason: str) -> JobEnd:
        return await end_job(claim, status, reason)


def flow_steps(flow_run_id: str | None) -> TracedSteps | TaskRunSteps:
    """The steps a flow run hands `dispatch_one` in traced or steps mode (lean: `lean_job`),
    and its intake: a task run in steps mode only."""
    if get_runtime().settings.dispatch_mode == "steps":
        return TaskRunSteps(flow_run_id)
    return TracedSteps(flow_run_id)


# Outcomes a lean job's task run shows as Failed: the job failed, or this run crashed on it.
_FAILED_OUTCOMES = frozenset({JobStatus.FAILED.value, NotFinished.CRASHED.value})


@task(
    name="dispatch-job",
    task_run_name="dispatch {claim.spec.queue_task_id}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
async def dispatch_job(
    claim: Claim, capacity_wait: float, flow_run_id: str | None
) -> State[JobLine]:
    """One job from plan to end, every step and agent call a plain coroutine (lean mode).

    Rows, statuses and events are the same as in traced mode; the UI shows this one run per
    job, its state message saying how the job ended (Failed when the job failed)."""
    run_id = str(task_run.id) if task_run.id else None
    line = await dispatch_one(PlainSteps(get_runtime(), flow_run_id, run_id), claim, capacity_wait)
    said = f"{line.outcome}" + (f" by {line.winner}" if line.winner else "")
    said += f": {line.detail}" if line.detail else ""
    if line.outcome in _FAILED_OUTCOMES:
        return Failed(message=said, data=line)
    return Completed(message=said, data=line)


async def lean_job(claim: Claim, capacity_wait: float, flow_run_id: str | None) -> JobLine:
    """Run `dispatch_job` and read the job's line back from its state."""
    state: State[Any] = await dispatch_job(  # type: ignore[misc]
        claim, capacity_wait, flow_run_id, return_state=True
    )
    line = await state.result(raise_on_failure=False)  # type: ignore[misc]
    if isinstance(line, BaseException):
        raise line  # a crash inside the task run: the pool records the job CRASHED
    assert isinstance(line, JobLine)
    return line
