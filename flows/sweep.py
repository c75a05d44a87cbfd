"""The sweep flow: no job lost after a crash, no ending left untold to the queue."""

from __future__ import annotations

from collections import Counter

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Failed
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.flows.reports import (
    QUEUE_DOWN,
    database_line,
    publish_sweep,
    queue_line,
    run_name,
)
from agent_dispatch.services.sweep import SweepAction, SweepLine
from agent_dispatch.tasks.sweep_tasks import (
    reconcile_stale_open,
    rescue_expired,
    send_unreported,
    stop_abandoned,
)


class SweepParams(BaseModel):
    """Parameters of one sweep run (rendered as a form in the Prefect UI)."""

    model_config = ConfigDict(frozen=True)  # the flow's default instance is shared
    limit: int = Field(default=500, ge=1, le=10_000, description="Jobs per step")
    settle_seconds: float = Field(
        default=10.0, ge=0, description="Leave endings younger than this to their worker"
    )


class SweepSummary(BaseModel):
    lines: list[dict[str, str]] = Field(default_factory=list)
    cancels_confirmed: int = 0
    stopped_reason: str | None = None  # the outage that ended the run Failed

    def count(self, action: str) -> int:
        return sum(1 for line in self.lines if line["action"] == action)

    def counts(self) -> dict[str, int]:
        return dict(Counter(line["action"] for line in self.lines))

    def headline(self) -> str:
        counts = ", ".join(f"{n} {a}" for a, n in sorted(self.counts().items()))
        stopped = f"; stopped: {self.stopped_reason}" if self.stopped_reason else ""
        return f"sweep: {counts or 'nothing to do'}{stopped}"


def _as_dicts(lines: list[SweepLine]) -> list[dict[str, str]]:
    return [
        {
            "queueTaskId": x.queue_task_id,
            "jobId": x.job_id,
            "action": x.action.value,
            "detail": x.detail,
        }
        for x in lines
    ]


@flow(name="sweep", flow_run_name=run_name("sweep"))
async def sweep_flow(
    params: SweepParams = SweepParams(),  # noqa: B008 (frozen; prefills the UI's form)
) -> SweepSummary | State[SweepSummary]:
    """Rescue jobs whose lease expired, reconcile stale OPEN jobs, then resend untold endings.

    A run that could not work ends Failed with one line, its summary as the state's data:
    the database down, or the queue out of reach (every job that needed the queue deferred;
    the services defer per job, so the next sweep tries again).
    """
    params = params or SweepParams()
    rt = get_runtime()
    rt.hold_clients()  # closed by the last run of this process to end
    logger = get_run_logger()
    summary = SweepSummary()
    try:
        rescued = await rescue_expired(params.limit)
        summary.lines += _as_dicts(list(rescued.lines))
        if rescued.calls:
            summary.cancels_confirmed = await stop_abandoned(rescued.calls)
        asked = await reconcile_stale_open(params.limit)
        summary.lines += _as_dicts(asked)
        told = await send_unreported(rescued.ended_job_ids, params.settle_seconds, params.limit)
        summary.lines += _as_dicts(told)
        summary.stopped_reason = _queue_outage(asked + told)
    except OperationalError as exc:  # the database refused a connection or went away
        summary.stopped_reason = database_line(exc)
    except QUEUE_DOWN as exc:
        summary.stopped_reason = queue_line(exc)
    finally:
        await rt.aclose_clients()
    for line in summary.lines:
        logger.info("%s: %s %s", line["queueTaskId"], line["action"], line["detail"])
    logger.info(summary.headline())
    await publish_sweep(summary.lines, summary.headline())
    if summary.stopped_reason:
        logger.error("sweep stopped: %s", summary.stopped_reason)
        return Failed(message=summary.stopped_reason, data=summary)
    return summary


def _queue_outage(asked: list[SweepLine]) -> str | None:
    """The queue counts as out of reach when it was needed and not one request got through."""
    if not asked or any(x.action != SweepAction.DEFERRED for x in asked):
        return None
    return queue_line(f"{len(asked)} job(s) deferred; first: {asked[0].detail}")
