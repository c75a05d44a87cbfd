"""A workflow run as a pure state machine: from the steps' stored states, what happens next.

The runner stores every step as a job row and asks `next_moves` again after each change, so
a run rebuilt from the database after a crash decides exactly what the lost one would have:
steps already COMPLETED are never started again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.domain.workflow import (
    INHERITED,
    FailurePolicy,
    StepDef,
    WorkflowDef,
    resolve,
)


@dataclasses.dataclass(frozen=True, slots=True)
class StepState:
    """The latest try of one step, as stored."""

    status: JobStatus
    tries: int = 1
    result: Any = None
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Start:
    step_id: str
    try_no: int
    payload: Any  # the step's input, references filled


@dataclasses.dataclass(frozen=True, slots=True)
class Skip:
    step_id: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Ending:
    """How the whole run ends: COMPLETED with `output`, or FAILED/EXPIRED naming a step."""

    status: JobStatus
    output: Any = None
    error: str | None = None
    step_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Moves:
    start: tuple[Start, ...] = ()
    skip: tuple[Skip, ...] = ()
    running: tuple[str, ...] = ()  # steps with a live job (the runner drives or resumes them)
    ending: Ending | None = None


def context_of(job: Mapping[str, Any], states: Mapping[str, StepState]) -> dict[str, Any]:
    """What references read: the queue task, and each step's result and status."""
    steps = {sid: {"result": st.result, "status": st.status.value} for sid, st in states.items()}
    return {"job": job, "steps": steps}


def _settled(step: StepDef, st: StepState) -> bool | None:
    """True when the step no longer holds anyone up, False when the run must stop for it,
    None while it runs or waits for a retry."""
    if st.status in (JobStatus.COMPLETED, JobStatus.SKIPPED):
        return True
    if not st.status.terminal:
        return None
    policy = step.on_failure
    if policy.policy is FailurePolicy.CONTINUE:
        return True
    if policy.policy is FailurePolicy.RETRY and st.status is JobStatus.FAILED:
        return None if st.tries <= policy.retries else False
    return False


def next_moves(wf: WorkflowDef, states: Mapping[str, StepState], job: Mapping[str, Any]) -> Moves:
    """Which steps start (needs met, `when` true), which are skipped, and whether the run ends.

    A need is met once the needed step is COMPLETED, SKIPPED, or failed with `onFailure:
    continue`; a skipped or failed step's result reads as null (use `or` for a fallback).
    """
    known = dict(states)
    settled: set[str] = set()
    start: list[Start] = []
    skip: list[Skip] = []
    running: list[str] = []
    for sid in wf.order():
        step, st = wf.step(sid), known.get(sid)
        if st is not None:
            verdict = _settled(step, st)
            if verdict is True:
                settled.add(sid)
            elif verdict is False:
                status = JobStatus.EXPIRED if st.status is JobStatus.EXPIRED else JobStatus.FAILED
                what = st.status.value.lower()
                error = f"step {sid!r} {what}" + (f": {st.error}" if st.error else "")
                return Moves(running=tuple(running), ending=Ending(status, None, error, sid))
            elif st.status.terminal:  # failed with a retry left
                payload = resolve(step.input, context_of(job, known))
                start.append(Start(sid, st.tries + 1, payload))
            else:
                running.append(sid)
            continue
        if not all(n in settled for n in step.needs):
            continue
        ctx = context_of(job, known)
        if (
            step.when is not None
            and resolve("{{ " + step.when.ref + " }}", ctx) != step.when.equals
        ):
            skip.append(Skip(sid, f"when {step.when.describe()} was false"))
            known[sid] = StepState(JobStatus.SKIPPED, 0)
            settled.add(sid)
            continue
        start.append(Start(sid, 1, resolve(step.input, ctx)))
    ending = None
    if len(settled) == len(wf.steps):
        ending = Ending(JobStatus.COMPLETED, resolve(wf.output, context_of(job, known)))
    return Moves(tuple(start), tuple(skip), tuple(running), ending)


def step_fields(wf: WorkflowDef, step: StepDef, task: Mapping[str, Any]) -> dict[str, Any]:
    """A step's matching fields: its own, else the task's (those it set), else the defaults."""
    out: dict[str, Any] = {}
    for name in INHERITED:
        for source in (step.fields, task, wf.defaults):
            if source.get(name) is not None:
                out[name] = source[name]
                break
    return out
