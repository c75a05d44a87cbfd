"""Operator actions outside a flow run: cancel a job (agents stopped, queue told)."""

from __future__ import annotations

import asyncio
import contextlib

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.bootstrap import prefect_events as events
from agent_dispatch.clients.agent import AgentEndpoint
from agent_dispatch.clients.errors import QueueError, TaskConflict
from agent_dispatch.db.models import Agent
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.statuses import AgentRunStatus, FailureKind, IllegalTransition, JobStatus
from agent_dispatch.services.workflow_parent import cancel_steps


class OperationError(Exception):
    """A one-line reason the operation could not be done."""


async def cancel_job(rt: Runtime, ref: str) -> str:
    """Cancel a job: revoke its lease, end its agent rows, cancel agent calls, tell the queue."""

    def mark() -> tuple[str, str, str, list[tuple[AgentEndpoint, str, str | None]]]:
        with rt.uow() as uow:
            job = uow.jobs.find(ref)
            if job is None:
                raise OperationError(f"no job {ref!r}")
            if JobStatus(job.status).terminal:
                raise OperationError(f"job {job.queue_task_id} is already {job.status}")
            expected = job.queue_status or job.status
            try:
                uow.jobs.transition_unleased(
                    job.id, JobStatus.CANCELLED, utcnow(), error="cancelled by an operator"
                )
            except IllegalTransition as exc:
                raise OperationError(str(exc)) from None
            calls = []
            now = utcnow()
            # A workflow's parent: its running steps are cancelled too, their agents told.
            for c in cancel_steps(
                uow, job.id, "cancelled by an operator", rt.settings.default_agent_timeout
            ):
                endpoint = AgentEndpoint(
                    c.agent_id, c.agent_name, c.url, rt.agent_token(c.token_ref)
                )
                calls.append((endpoint, c.distribution_id, c.remote_task_id))
            for row in uow.distributions.open_rows(job.id):
                was_working = row.status == AgentRunStatus.WORKING
                uow.distributions.move_agent(
                    None,
                    row.id,
                    AgentRunStatus.CANCELLED,
                    finished_at=now,
                    failure_kind=FailureKind.CANCELLED.value,
                    error="job cancelled by an operator",
                )
                agent = uow.session.get(Agent, row.agent_id) if row.agent_id else None
                if was_working and agent is not None:
                    endpoint = AgentEndpoint(
                        agent.id, agent.name, agent.url, rt.agent_token(agent.token_ref)
                    )
                    calls.append((endpoint, row.distribution_id, row.remote_task_id))
            for record in uow.distributions.running(job.id):
                record.status, record.finished_at = "CANCELLED", now
            uow.commit()
            return job.id, job.queue_task_id, expected, calls

    job_id, qid, expected, calls = await asyncio.to_thread(mark)
    events.job_status_changed(job_id, qid, "CANCELLED", error="cancelled by an operator")
    agents = rt.agents()
    for endpoint, dist_id, remote in calls:
        with contextlib.suppress(Exception):
            await agents.cancel(
                endpoint, job_id=qid, distribution_id=dist_id, remote_task_id=remote
            )
    told = "queue told"
    try:
        await rt.queue().change_status(qid, "CANCELLED", expected, error="cancelled by an operator")

        def reported() -> None:
            with rt.uow() as uow:
                job = uow.jobs.get(job_id)
                if job is not None:
                    job.queue_status = "CANCELLED"
                    uow.commit()

        await asyncio.to_thread(reported)
    except TaskConflict as exc:
        told = f"queue not changed: {exc}"
    except QueueError as exc:
        told = f"queue not told yet (the sweep retries): {exc}"
    finally:
        await rt.aclose_clients()
    return f"cancelled job {qid}: {len(calls)} agent call(s) stopped, {told}"
