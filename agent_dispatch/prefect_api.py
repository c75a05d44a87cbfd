"""The Prefect API a command's flow runs report to: the configured one, or a temporary local
server that this command starts, and stops only after the run's events and logs are sent."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

from agent_dispatch.flows.dispatch import DispatchParams, DispatchSummary

STARTUP_TIMEOUT_SECONDS = 120  # a loaded 2-core machine needs more than Prefect's default
SETTLE_SECONDS = 20.0  # longest wait for the server to record the last task-run states


class PrefectSession:
    """The API flow runs report to, and the flow runs this command started there."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.flow_run_ids: list[uuid.UUID] = []

    def started(self, flow_run_id: uuid.UUID | None) -> None:
        if flow_run_id is not None:
            self.flow_run_ids.append(flow_run_id)

    def settle(self) -> None:
        """Wait (bounded) until the server shows every task run of our flow runs finished.

        The server records task-run states from events in the background; stopping it while
        it still holds some loses those records and prints "Error flushing events".
        """
        if not self.flow_run_ids:
            return
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        ids = FlowRunFilter(id=FlowRunFilterId(any_=self.flow_run_ids))
        deadline = time.monotonic() + SETTLE_SECONDS
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_task_runs(flow_run_filter=ids)
                if all(r.state is not None and r.state.is_final() for r in runs):
                    return
                time.sleep(0.2)


def _drain_prefect_workers() -> None:
    """Send what Prefect's background workers still hold (events, logs) before the server goes:
    stopping it first ends the run with "Error flushing events" tracebacks and lost records."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (EventsWorker, APILogWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=30)


@contextlib.contextmanager
def prefect_api() -> Iterator[PrefectSession]:
    """The Prefect API for this command; a temporary server when none is configured."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )

    configured = PREFECT_API_URL.value()
    if configured:
        try:
            yield PrefectSession(configured)
        finally:
            _drain_prefect_workers()
        return
    from prefect.server.api.server import SubprocessASGIServer

    # Set for the server we start (it inherits these settings): no telemetry calls from a
    # machine that may have no internet.
    with temporary_settings(updates={PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        server = SubprocessASGIServer()
        server.start(timeout=STARTUP_TIMEOUT_SECONDS)
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                session = PrefectSession(server.api_url)
                try:
                    yield session
                finally:
                    _drain_prefect_workers()
                    with contextlib.suppress(Exception):
                        session.settle()
        finally:
            server.stop()


def run_dispatch(session: PrefectSession, params: DispatchParams) -> DispatchSummary:
    """One dispatch flow run in this process; its summary, even when the run ended Failed."""
    import asyncio

    from prefect.client.schemas.objects import State

    from agent_dispatch.flows.dispatch import dispatch_flow

    state: State[DispatchSummary] = asyncio.run(
        dispatch_flow(params, return_state=True)  # type: ignore[arg-type]
    )
    session.started(state.state_details.flow_run_id)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, Exception):
        raise summary
    assert isinstance(summary, DispatchSummary)
    return summary
