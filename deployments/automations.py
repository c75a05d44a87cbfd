"""agent-dispatch automations as code: `python -m deployments.automations [--notify BLOCK]`.

Applies (creates, or updates by name) the automations below on the Prefect server that
PREFECT_API_URL points at. Without --notify they only record that they fired (their
`prefect.automation.triggered` events show in the Event Feed, and on the Automations page);
with --notify BLOCK_TYPE/BLOCK_NAME (a notification block, e.g. slack-webhook/ops) they also
send a message. The health-check deployment in prefect.yaml carries one more trigger: it
runs when an agent fails three times within five minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import uuid
from collections.abc import Sequence

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ActionTypes, ChangeFlowRunState, DoNothing, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

JOB_FAILED = "agent-dispatch: job failed"
ZOMBIES = "agent-dispatch: crash flow runs that stopped sending heartbeats"
AGENT_FAILING = "agent-dispatch: agent failing repeatedly"
AGENT_FAILURES = 3
AGENT_WINDOW = dt.timedelta(minutes=5)


def zombie_window(heartbeat_seconds: int) -> dt.timedelta:
    """Missing three heartbeats in a row means the run's process is gone."""
    return dt.timedelta(seconds=3 * heartbeat_seconds)


def definitions(
    notify_block_id: uuid.UUID | None = None, heartbeat_seconds: int = 30
) -> list[AutomationCore]:
    """The automations; `notify_block_id` adds a notification to the agent-dispatch ones.

    `heartbeat_seconds` must match PREFECT_FLOWS_HEARTBEAT_FREQUENCY on the workers.
    """

    def actions(subject: str, body: str) -> list[ActionTypes]:
        if notify_block_id is None:
            return [DoNothing()]
        return [SendNotification(block_document_id=notify_block_id, subject=subject, body=body)]

    return [
        AutomationCore(
            name=JOB_FAILED,
            description="A job ended FAILED: every agent it was given failed or timed out.",
            trigger=EventTrigger(
                match={"prefect.resource.id": "agent-dispatch.job.*"},
                expect={"agent-dispatch.job.failed"},
                posture=Posture.Reactive,
                threshold=1,
                within=dt.timedelta(0),
            ),
            actions=actions(
                "agent-dispatch job {{ event.resource['prefect.resource.name'] }} FAILED",
                "Job {{ event.resource['prefect.resource.name'] }} failed: "
                "{{ event.payload.get('error', '') }}",
            ),
        ),
        AutomationCore(
            name=AGENT_FAILING,
            description=(
                f"One agent failed or timed out {AGENT_FAILURES} times within "
                f"{int(AGENT_WINDOW.total_seconds() // 60)} minutes."
            ),
            trigger=EventTrigger(
                match={"prefect.resource.id": "agent-dispatch.agent.*"},
                expect={"agent-dispatch.agent.failed", "agent-dispatch.agent.timeout"},
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=AGENT_FAILURES,
                within=AGENT_WINDOW,
            ),
            actions=actions(
                "agent-dispatch agent {{ event.resource['prefect.resource.name'] }} is failing",
                "Agent {{ event.resource['prefect.resource.name'] }} failed "
                f"{AGENT_FAILURES} times in a row; last error: "
                "{{ event.payload.get('error', '') }}",
            ),
        ),
        # A flow run whose process died with its worker (kill -9, lost machine) stays Running
        # on the server; its heartbeats stop. This marks it Crashed; the sweep then rescues
        # its jobs once their leases run out (docs/deploy.md, "When a worker dies").
        AutomationCore(
            name=ZOMBIES,
            description="A Running flow run missed three heartbeats: its process is gone.",
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                after={"prefect.flow-run.heartbeat"},
                expect={
                    "prefect.flow-run.heartbeat",
                    "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed",
                },
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=zombie_window(heartbeat_seconds),
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message=f"No heartbeat for {3 * heartbeat_seconds} s: its process is gone.",
                )
            ],
        ),
    ]


async def notify_block(client: PrefectClient, slug: str) -> uuid.UUID:
    """`slack-webhook/ops` -> the id of that block document."""
    block_type, sep, name = slug.partition("/")
    if not sep or not block_type or not name:
        raise ValueError(f"--notify expects BLOCK_TYPE/BLOCK_NAME, got {slug!r}")
    try:
        doc = await client.read_block_document_by_name(name=name, block_type_slug=block_type)
    except ObjectNotFound:
        raise ValueError(f"no block {slug!r} on this Prefect server") from None
    return doc.id


async def apply(notify: str | None = None, heartbeat_seconds: int = 30) -> dict[str, uuid.UUID]:
    """Create or update every automation by name; returns their ids."""
    applied: dict[str, uuid.UUID] = {}
    async with get_client() as client:
        block_id = await notify_block(client, notify) if notify else None
        for automation in definitions(block_id, heartbeat_seconds):
            existing = await client.read_automations_by_name(automation.name)
            if existing:
                await client.update_automation(existing[0].id, automation)
                applied[automation.name] = existing[0].id
                for duplicate in existing[1:]:
                    await client.delete_automation(duplicate.id)
            else:
                applied[automation.name] = await client.create_automation(automation)
    return applied


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.automations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--notify",
        metavar="BLOCK_TYPE/BLOCK_NAME",
        default=None,
        help="a notification block to send to, e.g. slack-webhook/ops",
    )
    parser.add_argument(
        "--heartbeat-seconds",
        type=int,
        default=30,
        help="PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the workers (default 30)",
    )
    args = parser.parse_args(argv)
    if args.heartbeat_seconds < 30:
        parser.error("--heartbeat-seconds must be at least 30 (Prefect's minimum)")
    try:
        applied = asyncio.run(apply(args.notify, args.heartbeat_seconds))
    except Exception as exc:
        print(f"automations not applied: {exc}", file=sys.stderr)
        return 1
    for name, automation_id in applied.items():
        print(f"applied automation {name!r} ({automation_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
