"""Run progress as a Prefect progress artifact, shown on the flow run page."""

from __future__ import annotations

import contextlib
import uuid

from prefect.artifacts import create_progress_artifact, update_progress_artifact


class Progress:
    """Counts jobs started and finished in a run and publishes the percentage."""

    def __init__(self, artifact_id: uuid.UUID | None) -> None:
        self.artifact_id = artifact_id
        self.total = 0
        self.done = 0
        self.by_outcome: dict[str, int] = {}

    @classmethod
    async def start(cls) -> Progress:
        artifact_id = None
        with contextlib.suppress(Exception):  # progress is informative; never fail a run for it
            artifact_id = await create_progress_artifact(  # type: ignore[misc]
                0.0, key="dispatch-progress", description="Jobs of this run driven to an end"
            )
        return cls(artifact_id)

    def add(self, n: int) -> None:
        self.total += n

    def describe(self) -> str:
        parts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(self.by_outcome.items()))
        return f"{self.done}/{self.total} jobs done" + (f" ({parts})" if parts else "")

    async def job_done(self, outcome: str) -> None:
        self.done += 1
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1
        await self._publish()

    async def finish(self) -> None:
        await self._publish(final=True)

    async def _publish(self, final: bool = False) -> None:
        if self.artifact_id is None:
            return
        pct = 100.0 if final or not self.total else 100.0 * self.done / self.total
        with contextlib.suppress(Exception):
            await update_progress_artifact(self.artifact_id, pct, description=self.describe())  # type: ignore[misc]
