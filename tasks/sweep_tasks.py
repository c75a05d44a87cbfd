"""Sweep tasks: one Prefect task run per sweep step; the work is in agent_dispatch.services."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.db.sweep_repository import AbandonedCall
from agent_dispatch.services import outbox, sweep
from agent_dispatch.services.sweep import Rescued, SweepLine


@task(name="rescue-expired-leases", cache_policy=NO_CACHE)
async def rescue_expired(limit: int) -> Rescued:
    """Close the open agent rows of taken jobs with an expired lease, then requeue or end them."""
    return await sweep.rescue_expired(get_runtime(), limit)


@task(name="stop-abandoned-calls", cache_policy=NO_CACHE)
async def stop_abandoned(calls: tuple[AbandonedCall, ...]) -> int:
    """Tell agents to stop work nobody waits for any more; returns the cancels they confirmed."""
    return await sweep.stop_abandoned(get_runtime(), calls)


@task(name="reconcile-stale-open", cache_policy=NO_CACHE)
async def reconcile_stale_open(limit: int) -> list[SweepLine]:
    """OPEN jobs left with an expired lease: ask the queue where each one really is."""
    return await sweep.reconcile_stale_open(get_runtime(), limit)


@task(name="send-unreported", cache_policy=NO_CACHE)
async def send_unreported(
    job_ids: tuple[str, ...], settle_seconds: float, limit: int
) -> list[SweepLine]:
    """The outbox: tell the queue every ending it has not accepted yet."""
    return await outbox.send_unreported(get_runtime(), job_ids, settle_seconds, limit)
