"""A worker process for the crash test: claims every OPEN task and runs it as a workflow
with plain services, until it is killed. `python -m tests.services.workflow_worker SETTINGS`"""

from __future__ import annotations

import asyncio
import json
import sys

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.services.deps import NullEvents
from agent_dispatch.settings import Settings
from tests.services import workflow_support as wf


async def main(settings: Settings) -> None:
    rt = Runtime(settings)
    rt.events = NullEvents()
    for claim in await wf.claim_all(rt):
        await wf.run(rt, claim)


if __name__ == "__main__":
    asyncio.run(main(Settings.model_validate(json.loads(sys.argv[1]))))
