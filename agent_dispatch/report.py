"""Human-readable run summaries for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_dispatch.flows.dispatch import DispatchSummary


def print_summary(summary: DispatchSummary) -> None:
    outcomes = summary.outcomes  # every job's; `jobs` lists only the last ones to end
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(outcomes.items())) or "nothing to do"
    print(f"dispatch run: {summary.taken} taken, {summary.rejected} rejected — {counts}")
    if summary.waiting:
        print(
            f"  {summary.waiting} OPEN task(s) left waiting: no agent could serve them and the"
            " agents are unchanged since (`jobs list` shows why)"
        )
    if len(summary.jobs) < sum(outcomes.values()):
        print(f"  the last {len(summary.jobs)} jobs to end (the run's log has every one):")
    for line in summary.jobs:
        if line.winner:
            what = f"won by {line.winner} in {line.winner_latency_ms:.0f} ms"
        else:
            what = line.detail or ""
        print(f"  {line.queue_task_id:<24} {line.outcome:<11} {what}")
