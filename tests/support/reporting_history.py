"""A known execution history for the reporting tests, written straight through the ORM.

Times are offsets in seconds from `base`. Hour 0 is [base, base+1h), hour 1 the next hour; one
old job sits 20 h before base and one job is still running. The expected numbers the tests
assert are written out by hand in the tests, not derived from this table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.orm import Session

from agent_dispatch.db.models import Agent, Job, JobDistributionAgent, JobDistributionRecord

AGENTS = ("alpha", "beta", "gamma", "delta")


@dataclass
class Call:
    agent: str
    status: str
    kind: str | None = None
    latency_ms: float | None = None
    won: bool = False


@dataclass
class Dist:
    start: float
    status: str
    calls: list[Call]
    first_result: float | None = None


@dataclass
class JobSpec:
    key: str
    category: str
    status: str
    created: float
    finished: float | None
    dists: list[Dist] = field(default_factory=list)


def C(agent: str, ms: float, won: bool = False) -> Call:
    return Call(agent, "COMPLETED", None, ms, won)


def X(agent: str, ms: float) -> Call:  # cancelled: lost the race or the job was stopped
    return Call(agent, "CANCELLED", "cancelled", ms)


def F(agent: str, kind: str, ms: float | None) -> Call:
    status = "TIMEOUT" if kind == "timeout" else "FAILED"
    return Call(agent, status, kind, ms)


HISTORY: list[JobSpec] = [
    JobSpec("j0", "code", "COMPLETED", -72000, -71999,
            [Dist(-72000, "COMPLETED", [C("alpha", 500, True)], -71999.5)]),
    # hour 0
    JobSpec("j1", "code", "COMPLETED", 0, 62, [Dist(60, "COMPLETED", [
        C("alpha", 1000, True), X("beta", 1000), F("gamma", "http_error", 500)], 61)]),
    JobSpec("j2", "code", "COMPLETED", 600, 603, [Dist(600, "COMPLETED", [
        C("alpha", 2000, True), F("beta", "timeout", 1500), F("gamma", "invalid_answer", 200)],
        602)]),
    JobSpec("j3", "text", "COMPLETED", 1200, 1205, [Dist(1200, "COMPLETED", [
        C("beta", 4000, True), X("alpha", 4000)], 1204)]),
    JobSpec("j4", "text", "FAILED", 1800, 1806, [Dist(1800, "FAILED", [
        F("alpha", "agent_failed", 800), F("gamma", "timeout", 5000)])]),
    JobSpec("j5", "code", "EXPIRED", 2400, 2406, [Dist(2400, "EXPIRED", [
        F("beta", "timeout", 5000), F("gamma", "connection", 100)])]),
    JobSpec("j6", "text", "CANCELLED", 3000, 3001, [Dist(3000, "CANCELLED", [
        X("alpha", 700), X("beta", 700)])]),
    # hour 1
    JobSpec("j7", "code", "COMPLETED", 3600, 3662, [
        Dist(3600, "FAILED", [F("gamma", "http_error", 400)]),
        Dist(3660, "COMPLETED", [C("alpha", 1500, True), X("gamma", 1500)], 3661.5)]),
    JobSpec("j8", "text", "CANCELLED", 4000, 4100),
    JobSpec("j9", "code", "COMPLETED", 4200, 4204, [Dist(4200, "COMPLETED", [
        C("beta", 3000, True), F("alpha", "invalid_answer", 100), F("gamma", "blocked", None)],
        4203)]),
    JobSpec("j10", "text", "COMPLETED", 5000, 5001, [Dist(5000, "COMPLETED", [
        C("delta", 600, True), X("alpha", 600)], 5000.6)]),
    # still running: must not be counted anywhere
    JobSpec("j11", "code", "IN_PROGRESS", 5400, None, [Dist(5400, "RUNNING", [
        Call("alpha", "WORKING")])]),
]  # fmt: skip


def add_job(
    session: Session, spec: JobSpec, base: dt.datetime, agent_ids: dict[str, str | None]
) -> None:
    """Insert one job with its distributions and agent rows (times: base + offsets)."""

    def at(offset: float) -> dt.datetime:
        return base + dt.timedelta(seconds=offset)

    job = Job(queue_task_id=spec.key, title=spec.key, category=spec.category,
              status=spec.status, created_at=at(spec.created), updated_at=at(spec.created),
              finished_at=at(spec.finished) if spec.finished is not None else None,
              attempts=len(spec.dists))  # fmt: skip
    session.add(job)
    session.flush()
    for n, d in enumerate(spec.dists, start=1):
        last = max((c.latency_ms or 0) for c in d.calls) / 1000
        record = JobDistributionRecord(
            job_id=job.id, attempt=n, status=d.status, started_at=at(d.start),
            first_result_at=at(d.first_result) if d.first_result is not None else None,
            finished_at=None if d.status == "RUNNING" else at(d.start + last),
        )  # fmt: skip
        session.add(record)
        session.flush()
        for rank, c in enumerate(d.calls, start=1):
            ended = c.status not in ("WORKING", "ASSIGNED")
            session.add(JobDistributionAgent(
                distribution_id=record.id, agent_id=agent_ids[c.agent], agent_name=c.agent,
                rank=rank, status=c.status, failure_kind=c.kind, latency_ms=c.latency_ms,
                won=c.won, attempts=1, idempotency_key=f"{record.id}:{c.agent}",
                started_at=at(d.start),
                finished_at=at(d.start + (c.latency_ms or 0) / 1000) if ended else None,
            ))  # fmt: skip
    session.flush()


def seed_history(session: Session, base: dt.datetime, *, remove_delta: bool = True) -> None:
    """Insert agents and HISTORY at `base`; then remove agent delta (its rows keep the name)."""
    agents = {n: Agent(name=n, url=f"http://127.0.0.1:9/{n}", categories=["code", "text"])
              for n in AGENTS}  # fmt: skip
    session.add_all(agents.values())
    session.flush()
    ids: dict[str, str | None] = {n: a.id for n, a in agents.items()}
    for spec in HISTORY:
        add_job(session, spec, base, ids)
    if remove_delta:
        session.execute(delete(Agent).where(Agent.name == "delta"))
    session.commit()
