"""What the simulation watches besides speed and cost: how fast a ranking notices drift.

"Noticed" is measured the same way for every ranking and policy, from two series over the
text jobs after the drift (the degraded agent serves text and code; text is where it was
the best agent):

* the primary slot: was it the first agent started (what the policy actually did);
* its score: did the ranking's own greedy order (no sampling) still put it first.

The drift is noticed at the first job after which, for the rest of the watch window, its
score never again puts it first and it gets the primary slot in at most 10% of the text jobs
that follow (a sampled exploration pick now and then is allowed; relying on it is not).
Evidence decays, so Thompson sampling retries an agent left unused: that is the
exploration the 10% allows, and `deg calls` counts what it cost. A ranking
that did not rank it first before the drift had nothing to notice: "n/a".
"""

from __future__ import annotations

from benchmarks.dispatch_sim import World

EXPLORE_SHARE = 0.1  # primary slot in at most 10% of the text jobs that follow: exploration
NOTICE_WINDOW = 300  # jobs before the drift that show whether it was ranked first
AFTER = 500  # jobs after the drift that are watched (calls counted, noticing judged)


class DriftWatch:
    def __init__(self, world: World) -> None:
        self.world = world
        self.first_before = self.text_before = 0
        # (jobs since the drift, 1-based; primary slot; ranked first by score)
        self.after: list[tuple[int, bool, bool]] = []
        self.calls_after = 0  # calls the degraded agent still got in the AFTER jobs
        self.late_jobs = self.late_first = 0  # after the excellent newcomer joined

    def saw(
        self, job: int, category: str, order: list[str], greedy: list[str], started: list[str]
    ) -> None:
        w, degraded = self.world, self.world.degraded_agent
        watching = w.degrade_at <= job < w.degrade_at + AFTER
        if watching:
            self.calls_after += degraded in started
        if job >= w.join_at:
            self.late_jobs += 1
            self.late_first += order[0] == w.late_agent
        if category != "text":
            return
        if w.degrade_at - NOTICE_WINDOW <= job < w.degrade_at:
            self.first_before += greedy[0] == degraded
            self.text_before += 1
        elif watching:
            self.after.append((job - w.degrade_at + 1, order[0] == degraded, greedy[0] == degraded))

    @property
    def relied_on(self) -> bool:
        """Ranked first by score in most text jobs before the drift."""
        return self.first_before * 2 >= max(self.text_before, 1)

    @property
    def noticed_after(self) -> int | None:
        """Jobs after the drift until it was noticed (see the module doc); None: never."""
        found: int | None = None
        primaries = 0  # primary slots from text job i to the end of the window
        for i in range(len(self.after) - 1, -1, -1):
            since, primary, ranked_first = self.after[i]
            if ranked_first:
                break  # its score put it first again here: not noticed before this job
            primaries += primary
            if not primary and primaries <= EXPLORE_SHARE * (len(self.after) - i):
                found = since
        return found

    def label(self) -> str:
        if not self.relied_on:
            return "n/a"
        after = self.noticed_after
        return "never" if after is None else f"{after} jobs"
