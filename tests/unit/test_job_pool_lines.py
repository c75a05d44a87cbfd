"""A run's pool keeps counts for every job but the lines of only the last few to end."""

from __future__ import annotations

from agent_dispatch.services.dispatching import JobLine, NotFinished
from agent_dispatch.services.intake import Claim
from agent_dispatch.services.job_pool import JobPool


class _Quiet:
    def add(self, n: int) -> None:
        pass

    async def job_done(self, line: JobLine) -> None:
        pass


async def _never(claim: Claim) -> JobLine:
    raise AssertionError("no job is started here")


def _line(i: int, outcome: str) -> JobLine:
    return JobLine(queue_task_id=f"task-{i:04d}", job_id=f"job-{i}", outcome=outcome)


async def test_the_pool_counts_every_outcome_but_keeps_only_the_last_lines() -> None:
    told: list[str] = []
    pool = JobPool(4, _never, _Quiet(), kept_lines=3, on_line=lambda j: told.append(j.outcome))
    outcomes = ["COMPLETED", "FAILED", NotFinished.UNSERVED, "COMPLETED", "COMPLETED"]

    pool.record(_line(i, o) for i, o in enumerate(outcomes))

    assert dict(pool.outcomes) == {"COMPLETED": 3, "FAILED": 1, "UNSERVED": 1}
    assert pool.taken == 4  # an unserved task was left on the queue, not taken
    assert pool.budget_left(10) == 6
    assert told == outcomes  # every line is told as it comes, kept or not
    kept = await pool.drain()
    assert [j.queue_task_id for j in kept] == ["task-0002", "task-0003", "task-0004"]
