"""An operator cancels a job: its lease revoked, its agent work closed, the agents and the
queue told. The worker running it notices the lost lease and stops writing."""

from __future__ import annotations

import dataclasses
import enum

from agent_dispatch.clients.errors import QueueError, TaskConflict
from agent_dispatch.db.sweep_repository import AbandonedCall
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.statuses import DistributionStatus, IllegalTransition, JobStatus
from agent_dispatch.services.deps import Deps, in_transaction
from agent_dispatch.services.errors import Conflict, NotFound
from agent_dispatch.services.sweep import stop_abandoned
from agent_dispatch.services.workflow_parent import cancel_steps

REASON = "cancelled by an operator"


class QueueAnswer(enum.StrEnum):
    """What became of the cancel on the queue."""

    TOLD = "queue told"
    REFUSED = "queue not changed"  # it holds another status (perhaps its own ending)
    DEFERRED = "queue not told yet (the sweep retries)"  # unreachable: the outbox resends


@dataclasses.dataclass(frozen=True, slots=True)
class CancelledJob:
    job_id: str
    queue_task_id: str
    calls_stopped: int  # agent calls that were running and were told to stop
    queue: QueueAnswer
    queue_detail: str = ""  # the queue's reason when it was not told

    def message(self) -> str:
        told = self.queue.value + (f": {self.queue_detail}" if self.queue_detail else "")
        stopped = f"{self.calls_stopped} agent call(s) stopped"
        return f"cancelled job {self.queue_task_id}: {stopped}, {told}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Marked:
    job_id: str
    queue_task_id: str
    queue_expected: str  # the status the queue last accepted: the PATCH is conditional on it
    calls: tuple[AbandonedCall, ...]


async def cancel_job(deps: Deps, ref: str) -> CancelledJob:
    """Cancel a job by id, id prefix or queue task id.

    Raises NotFound for an unknown job and Conflict for one already finished.
    """

    def mark(uow: UnitOfWork) -> _Marked:
        job = uow.jobs.find(ref)
        if job is None:
            raise NotFound(f"no job {ref!r}")
        if JobStatus(job.status).terminal:
            raise Conflict(f"job {job.queue_task_id} is already {job.status}")
        expected = job.queue_status or job.status
        now = utcnow()
        try:
            uow.jobs.transition_unleased(job.id, JobStatus.CANCELLED, now, error=REASON)
        except IllegalTransition as exc:  # it finished between our read and our write
            raise Conflict(str(exc)) from None
        calls = uow.sweep.close_open_rows(
            job.id,
            now,
            deps.settings.default_agent_timeout,
            "job " + REASON,
            attempt_status=DistributionStatus.CANCELLED,
        )
        # A workflow's parent: its running steps are cancelled too, their agents told.
        calls += cancel_steps(uow, job.id, REASON, deps.settings.default_agent_timeout)
        return _Marked(job.id, job.queue_task_id, expected, tuple(calls))

    marked = await in_transaction(deps, mark)
    deps.events.job_changed(marked.job_id, marked.queue_task_id, JobStatus.CANCELLED, error=REASON)
    await stop_abandoned(deps, marked.calls)
    answer, detail = await _tell_queue(deps, marked)
    return CancelledJob(marked.job_id, marked.queue_task_id, len(marked.calls), answer, detail)


async def _tell_queue(deps: Deps, marked: _Marked) -> tuple[QueueAnswer, str]:
    try:
        await deps.queue().change_status(
            marked.queue_task_id, JobStatus.CANCELLED, marked.queue_expected, error=REASON
        )
    except TaskConflict as exc:
        return QueueAnswer.REFUSED, str(exc)
    except QueueError as exc:
        return QueueAnswer.DEFERRED, str(exc)
    await in_transaction(
        deps, lambda uow: uow.jobs.mark_queue_status(marked.job_id, JobStatus.CANCELLED)
    )
    return QueueAnswer.TOLD, ""
