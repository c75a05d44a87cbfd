"""`agent-dispatch demo`: the real pipeline on SQLite and Prefect's ephemeral server,
against a simulated queue and simulated agents on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from agent_dispatch.bootstrap import Runtime, set_runtime
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent, Job
from agent_dispatch.prefect_api import prefect_api, run_dispatch
from agent_dispatch.report import print_summary
from agent_dispatch.services.agents import register_agent
from agent_dispatch.settings import Settings
from agent_dispatch.simulators.a2a_agents import A2AAgentFarm, a2a_behaviour
from agent_dispatch.simulators.scenarios import demo_scenario

DEMO_TOKEN = "demo-token"  # noqa: S105 - the simulated queue's token, not a secret


A2A_AGENT = "a2a-writer"


def demo_a2a_farm() -> A2AAgentFarm:
    """One A2A agent (a2a-sdk's own server parts) beside the http-json ones."""
    return A2AAgentFarm({A2A_AGENT: a2a_behaviour("fast", delay=0.25)})


async def register_a2a_agent(rt: Runtime, farm: A2AAgentFarm) -> None:
    """Registered as a user would: from its card (skills' tags), categories given."""
    try:
        await register_agent(
            rt,
            A2A_AGENT,
            farm.url_for(A2A_AGENT),
            categories=["summarize"],
            tags=["en"],
            protocol="a2a",
            skill_level=4,
            max_concurrency=2,
        )
    finally:
        await rt.aclose_clients()


def register_agents(rt: Runtime, scenario_agents: tuple, url_for) -> None:  # type: ignore[type-arg,no-untyped-def]
    with rt.uow() as uow:
        for spec in scenario_agents:
            uow.agents.add(
                Agent(
                    name=spec.name,
                    url=url_for(spec.name),
                    categories=list(spec.categories),
                    tags=list(spec.tags),
                    skill_level=spec.skill_level,
                    max_concurrency=spec.max_concurrency,
                )
            )
        uow.commit()


def explain(rt: Runtime) -> None:
    """Per job: who was chosen, how each agent ended, and why."""
    with rt.uow() as uow:
        jobs = sorted(uow.jobs.list(limit=1000), key=lambda j: j.queue_task_id)
        print("\nPer job, per agent (from the database):")
        for job in jobs:
            _explain_job(job)


def _explain_job(job: Job) -> None:
    print(f"  {job.queue_task_id} [{job.status}] {job.title}")
    if not job.distributions:
        print(f"      {job.error or job.match_summary or 'not dispatched'}")
    for dist in job.distributions:
        for row in dist.agents:
            ms = f"{row.latency_ms:6.0f} ms" if row.latency_ms is not None else "       - "
            mark = "WINNER" if row.won else row.status
            why = f"  {row.error}" if row.error and not row.won else ""
            print(f"      {row.agent_name:<11} {mark:<9} {ms}{why[:110]}")


def quiet_prefect_console() -> None:
    """Keep Prefect's per-task console lines out of the demo (they still reach the Prefect API)."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    # A filter, not a level: Prefect re-applies handler levels when its server starts.
    for name in ["", *logging.root.manager.loggerDict]:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.addFilter(lambda record: record.levelno >= logging.CRITICAL)


def run_demo(db_path: Path, verbose: bool = False) -> int:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db_path}{suffix}").unlink()
    scenario = demo_scenario(token=DEMO_TOKEN)
    a2a = demo_a2a_farm()
    with scenario.queue.serve() as queue_srv, scenario.farm.serve(), a2a.serve():
        settings = Settings.model_validate(
            {
                "database_url": f"sqlite:///{db_path}",
                "remote_queue_url": queue_srv.url,
                "remote_queue_token": DEMO_TOKEN,
                "agent_allow_private_networks": True,  # the simulated agents live on loopback
                "default_agent_timeout": 5000,
                "max_agents_per_job": 3,
                "lease_check_seconds": 0.5,
            }
        )
        rt = Runtime(settings)
        set_runtime(rt)
        upgrade(rt.engine)
        register_agents(rt, scenario.agents, scenario.farm.url_for)
        asyncio.run(register_a2a_agent(rt, a2a))
        print(
            f"simulated queue at {queue_srv.url} with {len(scenario.tasks)} tasks; "
            f"{len(scenario.agents)} simulated agents: "
            + ", ".join(f"{a.name} ({a.behaviour.kind})" for a in scenario.agents)
            + f", and {A2A_AGENT} (an A2A agent registered from its Agent Card)"
        )
        print("starting the dispatch flow (Prefect starts a temporary local server)...\n")
        from agent_dispatch.flows.dispatch import DispatchParams

        if not verbose:
            quiet_prefect_console()

        with prefect_api() as session:
            started = time.monotonic()
            summary = run_dispatch(session, DispatchParams())
            elapsed = time.monotonic() - started
        print()
        print_summary(summary)
        explain(rt)
        cancels = len(scenario.farm.cancels)
        print(f"\nlosers told to stop: {cancels} cancel call(s) received by the agents")
        print(
            "queue now: "
            + ", ".join(f"{k} {v}" for k, v in sorted(scenario.queue.counts().items()))
        )
        print(f"run took {elapsed:.1f} s")
        print(f"\nInspect it:  DATABASE_URL=sqlite:///{db_path} agent-dispatch jobs list")
        rt.dispose()
    return 0
