"""Intake: store queue tasks as jobs (idempotent) and lease the ones this run will work on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence

from agent_dispatch.clients.queue import RejectedItem
from agent_dispatch.db.job_repository import spec_of
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.backlog import PoolFor, unservable
from agent_dispatch.domain.lease import Lease, LeaseLost
from agent_dispatch.domain.lifecycle import precheck
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.queue_io import Incoming
from agent_dispatch.settings import Settings


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """A job this run holds the lease on."""

    lease: Lease
    job_id: str
    spec: JobSpec
    status: JobStatus  # when claimed: OPEN for new jobs, DISTRIBUTED/IN_PROGRESS when rescued


def _claims(uow: UnitOfWork, leases: Sequence[Lease]) -> list[Claim]:
    """The jobs just leased, read in one query (their spec columns are never written here)."""
    jobs = uow.jobs.leased_many(leases)
    out = []
    for lease in leases:
        job = jobs.get(lease.job_id)
        if job is None:
            raise LeaseLost(lease.job_id)
        out.append(Claim(lease, job.id, spec_of(job), JobStatus(job.status)))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Unserved:
    """A job intake found no agent could ever serve as the agents are (recorded with why)."""

    queue_task_id: str
    job_id: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Intake:
    claims: list[Claim]
    refused: tuple[RejectedItem, ...]  # items the database would not hold: reject them
    unserved: tuple[Unserved, ...] = ()  # judged now: no agent can serve them, left waiting
    waiting: int = 0  # judged before with the agents unchanged: left alone, not even read
    pending: tuple[str, ...] = ()  # beyond `limit`: offer these again when there is room


def _judge(
    uow: UnitOfWork, s: Settings, qids: Sequence[str], now: dt.datetime, want: int
) -> tuple[list[Unserved], list[str], list[str]]:
    """Which of these OPEN, unleased jobs no agent could serve (domain/backlog.py): (the
    unservable, the servable, the ones left unjudged), judged in order, chunk by chunk, until
    `want` servable ones are found. A page offered again while the run frees one slot at a
    time was otherwise read and judged whole every time (about 8% of a busy run's CPU)."""
    unserved: list[Unserved] = []
    servable: list[str] = []
    # Each category's agents, read once for all the chunks and only if a job needs judging:
    # never the whole fleet (a refill judged every agent: 0.64 s of CPU at 10,000 agents).
    small = functools.cache(uow.agents.is_small_fleet)
    pool_for = functools.cache(lambda category: uow.agents.judged_pool(category, now, small()))
    chunk = max(want, 16)
    done = 0
    while done < len(qids) and len(servable) < want:
        part = qids[done : done + chunk]
        done += len(part)
        found = _judge_chunk(uow, s, part, now, pool_for)
        unserved += found
        out = {u.queue_task_id for u in found}
        servable += [q for q in part if q not in out]
    return unserved, servable, list(qids[done:])


def _judge_chunk(
    uow: UnitOfWork,
    s: Settings,
    qids: Sequence[str],
    now: dt.datetime,
    pool_for: PoolFor,
) -> list[Unserved]:
    jobs = uow.jobs.open_jobs(qids, now) if qids else {}
    specs = {qid: spec_of(job) for qid, job in jobs.items()}
    # Expired or spent jobs must be planned: planning ends them.
    judged = [
        (qid, spec)
        for qid, spec in specs.items()
        if precheck(spec, JobStatus.OPEN, jobs[qid].attempts, s.job_max_attempts, now) is None
    ]
    if not judged:
        return []
    reasons = unservable(judged, pool_for)
    return [Unserved(qid, jobs[qid].id, why) for qid, why in reasons.items()]


async def store_and_lease(deps: Deps, incoming: Sequence[Incoming], limit: int) -> Intake:
    """Store each queue task once (idempotent) and lease up to `limit` OPEN ones nobody else
    holds. An item the database refuses is returned in `refused`; its neighbours go on.

    A job no agent could serve (capacity and circuits aside) is not leased: its reason and the
    agent pool's version are recorded in one batched write, and while that version holds, the
    next runs recognise it in the one query that finds the page's stored tasks and leave it
    alone: no lease, no plan, no write, no task run (a new or changed agent moves the version).
    """
    s = deps.settings

    def work(uow: UnitOfWork) -> Intake:
        now = utcnow()
        version = uow.jobs.pool_version()  # before any agent is read (see pool_version)
        ids = list(dict.fromkeys(i.spec.queue_task_id for i in incoming))
        known = uow.jobs.stored(ids, version, now, s.job_max_attempts)
        refused = uow.jobs.intake_each(
            (i.spec, i.created_at) for i in incoming if i.spec.queue_task_id not in known
        )
        out = {task_id for task_id, _ in refused}
        rejected = tuple(RejectedItem(task_id, reason) for task_id, reason in refused)
        waiting = sum(1 for qid in ids if known.get(qid))
        fresh = [qid for qid in ids if qid not in out and not known.get(qid)]
        # Twice the room: the first ones may be held by others. With no room, judge them all
        # (a page only stored now still gets its verdicts).
        want = 2 * limit if limit > 0 else len(fresh)
        unserved, offer, unjudged = _judge(uow, s, fresh, now, want)
        uow.jobs.note_unserved({u.queue_task_id: u.reason for u in unserved}, version, now)
        if not offer or limit <= 0:
            return Intake([], rejected, tuple(unserved), waiting, (*offer, *unjudged))
        leases = uow.jobs.claim_open(offer, deps.worker_name, s.job_lease_seconds, now, limit=limit)
        claims = _claims(uow, leases)
        # Fewer leases than allowed: every claimable one judged was claimed.
        got = {c.spec.queue_task_id for c in claims}
        left = tuple(q for q in offer if q not in got) if len(leases) >= limit else ()
        return Intake(claims, rejected, tuple(unserved), waiting, (*left, *unjudged))

    return await in_transaction(deps, work)


async def lease_rescued(deps: Deps, limit: int) -> list[Claim]:
    """Lease taken jobs the sweep handed back, to dispatch them again."""
    s = deps.settings

    def work(uow: UnitOfWork) -> list[Claim]:
        leases = uow.jobs.claim_rescued(deps.worker_name, s.job_lease_seconds, utcnow(), limit)
        return _claims(uow, leases)

    return await in_transaction(deps, work)
