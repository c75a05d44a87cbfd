"""A workflow run: its steps driven as step jobs, each by the same `dispatch_one` as any job.

The run holds its parent's lease (renewed while it works) and keeps no state of its own: each
pass reads the step jobs back, asks the domain what comes next (`next_moves`), stores skipped
steps, starts ready ones at once (parallel branches overlap), and re-takes unfinished steps
that no live run holds (a resumed run after a crash). So a run killed at any point resumes
from the database, and COMPLETED steps are never run again.

Each step dispatch holds one of the run's race slots (`RaceSlots`, JOB_CONCURRENCY shared with
the dispatch run's other jobs) from before its step job is stored until its race ends; a ready
step with no slot free waits unstored, and the parent itself holds none, so parents can never
starve their own steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from agent_dispatch.db.job_repository import spec_of
from agent_dispatch.db.models import Job
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.db.workflow_repository import step_task_id
from agent_dispatch.domain.lease import LeaseLost
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.domain.workflow import WorkflowDef
from agent_dispatch.domain.workflow_run import Ending, Moves, next_moves, step_fields
from agent_dispatch.services import workflow_parent as parent
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.dispatching import JobLine, NotFinished, PlainSteps, dispatch_one
from agent_dispatch.services.finishing import JobEnd
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.job_pool import RaceSlots, SlotHand
from agent_dispatch.services.racing import watch_lease
from agent_dispatch.services.sweep import stop_abandoned
from agent_dispatch.services.workflow_context import (
    job_context,
    latest_states,
    line_of,
    task_fields,
)

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 15.0

# Drives one step job plan -> take -> race -> finish: `dispatch_one` with plain or traced steps.
DispatchStep = Callable[[Claim], Coroutine[Any, Any, JobLine]]


@dataclasses.dataclass
class _Run:
    deps: Deps
    claim: Claim
    workflow: WorkflowDef
    dispatch_step: DispatchStep
    slots: RaceSlots
    running: dict[asyncio.Task[JobLine], str] = dataclasses.field(default_factory=dict)
    in_progress: bool = False
    hand: SlotHand = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.hand = SlotHand(self.slots)

    async def _holding_slot(self, claim: Claim) -> JobLine:
        try:
            return await self.dispatch_step(claim)
        finally:
            self.slots.release()

    @property
    def live(self) -> set[str]:
        return set(self.running.values())

    def step_spec(self, step_id: str, try_no: int, payload: Any) -> JobSpec:
        p = self.claim.spec
        f = step_fields(self.workflow, self.workflow.step(step_id), task_fields(p))
        return JobSpec(
            queue_task_id=step_task_id(p.queue_task_id, self.claim.job_id, step_id, try_no),
            title=f"{p.title} / {step_id}"[:500],
            category=f["category"],
            tags=tuple(f.get("tags") or ()),
            skill_level=f.get("skillLevel") or 1,
            description=p.description,
            payload=payload if isinstance(payload, dict) else {"input": payload},
            max_agents=f.get("maxAgents"),
            timeout_ms=f.get("timeoutMs"),
            expires_at=p.expires_at,
            parent_job_id=self.claim.job_id,
            step_id=step_id,
        )

    async def read(self) -> tuple[list[Job], Moves]:
        rows = await parent_steps(self.deps, self.claim.job_id)
        return rows, next_moves(self.workflow, latest_states(rows), job_context(self.claim.spec))

    async def apply(self, moves: Moves, rows: Sequence[Job]) -> bool:
        """Store skips, start ready steps, re-take orphaned ones; True if one is held elsewhere.
        A step starts only with a race slot; one taken for a step that did not start after all
        is given back at once."""
        s, now = self.deps.settings, utcnow()
        taken = self.hand.take(len(moves.start))  # slots not yet handed to a step's task
        specs = [(m.try_no, self.step_spec(m.step_id, m.try_no, m.payload)) for m in moves.start]
        del specs[taken:]

        def store(uow: UnitOfWork) -> list[Claim]:
            for skip in moves.skip:
                spec = self.step_spec(skip.step_id, 1, {})
                uow.workflows.add_step(
                    self.claim.lease, spec, 1, now, lease_seconds=0, skipped_because=skip.reason
                )
            claims: list[Claim] = []
            for try_no, spec in specs:
                lease = uow.workflows.add_step(
                    self.claim.lease, spec, try_no, now, lease_seconds=s.job_lease_seconds
                )
                assert lease is not None
                claims.append(Claim(lease, lease.job_id, spec, JobStatus.OPEN))
            return claims

        held_elsewhere = False
        try:
            if specs:
                await self.mark_in_progress()
            claims = await in_transaction(self.deps, store)
            for skipped in moves.skip:
                self.deps.events.job_changed(
                    self.claim.job_id,
                    self.claim.spec.queue_task_id,
                    "STEP_SKIPPED",
                    step=skipped.step_id,
                    reason=skipped.reason,
                )
            latest = {r.step_id: r for r in rows}
            orphans = [latest[sid] for sid in moves.running if latest[sid].id not in self.live]
            got = self.hand.take(len(orphans))
            taken += got
            for job in orphans[:got]:
                claim = await self.retake(job)
                if claim is None:
                    held_elsewhere = True
                else:
                    claims.append(claim)
            if claims:
                await self.mark_in_progress()
            for claim in claims:
                task = asyncio.create_task(self._holding_slot(claim))
                self.running[task] = claim.job_id
                taken -= 1
        finally:
            self.hand.give_back(taken)
        return held_elsewhere

    async def mark_in_progress(self) -> None:
        if not self.in_progress:
            await parent.mark_in_progress(self.deps, self.claim)
            self.in_progress = True

    async def retake(self, job: Job) -> Claim | None:
        """Lease an unfinished step nobody holds; a lost worker's agent calls are closed and
        their agents told to stop before the step is dispatched again."""
        s, owner = self.deps.settings, self.claim.lease.owner

        def take(uow: UnitOfWork) -> tuple[Claim, list[Any]] | None:
            lease = uow.workflows.claim_step(job.id, owner, s.job_lease_seconds, utcnow())
            if lease is None:
                return None
            why = "the worker running this step was lost; call abandoned"
            calls = uow.sweep.close_open_rows(job.id, utcnow(), s.default_agent_timeout, why)
            fresh = uow.jobs.get_leased(lease)
            return Claim(lease, job.id, spec_of(fresh), JobStatus(fresh.status)), calls

        taken = await in_transaction(self.deps, take)
        if taken is None:
            return None
        await stop_abandoned(self.deps, tuple(taken[1]))
        return taken[0]

    async def settle(self, task: asyncio.Task[JobLine]) -> None:
        """A step's dispatch ended: a step no agent could take, or one that crashed, fails
        (its `onFailure` decides what follows); every other end is already stored."""
        job_id = self.running.pop(task)
        try:
            line = task.result()
        except Exception as exc:  # a bug in one step must not sink the run
            log.exception("step job %s crashed", job_id)
            line = JobLine(
                queue_task_id="", job_id=job_id, outcome=NotFinished.CRASHED, detail=str(exc)
            )
        if line.outcome in (NotFinished.UNSERVED, NotFinished.CRASHED):
            why = (
                "no agent could take the step: "
                if line.outcome == NotFinished.UNSERVED
                else "the step crashed: "
            ) + (line.detail or "")
            await in_transaction(self.deps, lambda uow: _fail_step(uow, job_id, why))

    async def stop(self, reason: str) -> None:
        """Cancel the unfinished steps (their agents told), then wait for their runs."""
        await parent.stop_steps(self.deps, self.claim.job_id, reason)
        await self.drain()

    async def drain(self) -> None:
        if not self.running:
            return
        _, stuck = await asyncio.wait(set(self.running), timeout=STOP_GRACE_SECONDS)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)
        self.running.clear()


def _fail_step(uow: UnitOfWork, job_id: str, why: str) -> None:
    job = uow.jobs.get(job_id)
    if job is not None and not JobStatus(job.status).terminal:
        uow.jobs.transition_unleased(job_id, JobStatus.FAILED, utcnow(), error=why)


async def parent_steps(deps: Deps, parent_job_id: str) -> list[Job]:
    return await in_transaction(deps, lambda uow: list(uow.workflows.steps(parent_job_id)))


def plain_step(deps: Deps, capacity_wait: float) -> DispatchStep:
    """Each step as a plain `dispatch_one` (tests, lean mode); flows pass a traced one."""

    async def run(claim: Claim) -> JobLine:
        return await dispatch_one(PlainSteps(deps), claim, capacity_wait)

    return run


async def run_workflow(
    deps: Deps, claim: Claim, dispatch_step: DispatchStep, slots: RaceSlots | None = None
) -> JobLine:
    """Drive one leased workflow parent to its end (or leave it for the sweep). `slots`: the
    dispatch run's race budget; alone, the run gets JOB_CONCURRENCY slots of its own."""
    qid = claim.spec.queue_task_id
    try:
        begun = await parent.begin(deps, claim)
    except parent.NotBegun as exc:
        return JobLine(
            queue_task_id=qid, job_id=claim.job_id, outcome=NotFinished.CONFLICT, detail=str(exc)
        )
    if isinstance(begun, JobEnd):
        return line_of(begun)
    slots = slots or RaceSlots(deps.settings.job_concurrency)
    run = _Run(deps, claim, begun.workflow, dispatch_step, slots)  # IN_PROGRESS checked anew
    watchdog = asyncio.create_task(watch_lease(deps, claim.lease))
    try:
        while True:
            ending: Ending | None
            if claim.spec.is_expired(utcnow()):
                assert claim.spec.expires_at is not None
                ending = Ending(
                    JobStatus.EXPIRED,
                    error=f"expired at {claim.spec.expires_at:%Y-%m-%d %H:%M:%S}Z",
                )
            else:
                rows, moves = await run.read()
                ending = moves.ending
                if ending is not None and moves.skip:  # the last decisions are kept too
                    await run.apply(Moves(skip=moves.skip), rows)
            if ending is not None:
                if run.running or ending.status is not JobStatus.COMPLETED:
                    await run.stop(ending.error or "the workflow ended")
                return line_of(await parent.end(deps, claim, ending))
            held_elsewhere = await run.apply(moves, rows)
            poll = deps.settings.lease_check_seconds if held_elsewhere or not run.running else None
            waiting: set[asyncio.Task[Any]] = {*run.running, watchdog}
            if run.hand.waiting is not None:
                waiting.add(run.hand.waiting)
            done, _ = await asyncio.wait(waiting, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            if watchdog in done:
                raise LeaseLost(claim.job_id)
            if run.hand.waiting is not None and run.hand.waiting in done:
                done.discard(run.hand.waiting)
                run.hand.arrived()
            for task in done:
                await run.settle(task)
    except LeaseLost:
        await run.drain()
        return JobLine(
            queue_task_id=qid,
            job_id=claim.job_id,
            outcome=NotFinished.LEASE_LOST,
            detail="workflow run cancelled or rescued; this run stopped writing it",
        )
    finally:
        await run.hand.let_go()
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watchdog
