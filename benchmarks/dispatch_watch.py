"""What the simulation watches besides speed and cost: how fast a ranking notices drift.

"Noticed" is measured the same way for every ranking and policy, from two series over the
text jobs after the drift (the degraded agent serves text and code; text is where it was
the best agent):

* the primary slot: was it the first agent started (what the policy actually did);
* its score: does the ranking's own greedy order (no sampling) still give it its usual place
  before the drift (1: the primary, 2: the first backup, ...) or a better one?

The drift is noticed at the first job after which, for the rest of the watch window, its
score never again gives it its usual place (another agent's score is above it) and, when it
usually held the primary slot,
it gets the primary slot in at most 10% of the text jobs that follow (a sampled exploration
pick now and then is allowed; relying on it is not). Evidence decays, so Thompson sampling
retries an agent left unused: that is the exploration the 10% allows, and `deg calls`
counts what it cost. `place` is its usual place before the drift; an agent usually ranked
last has nowhere to fall ("n/a").
"""

from __future__ import annotations

from collections import Counter

from benchmarks.dispatch_sim import World

EXPLORE_SHARE = 0.1  # primary slot in at most 10% of the text jobs that follow: exploration
NOTICE_WINDOW = 300  # jobs before the drift that show whether it was ranked first
AFTER = 500  # jobs after the drift that are watched (calls counted, noticing judged)


class DriftWatch:
    def __init__(self, world: World) -> None:
        self.world = world
        self.before: list[list[str]] = []  # greedy text orders in the window before the drift
        self.usual: int | None = None  # its usual (most frequent) place before the drift, 0-based
        self.room_below = False  # some agent ranked below it (else it cannot fall)
        # (jobs since the drift, 1-based; primary slot; its score still holds its usual place)
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
            self.before.append(greedy)
        elif watching:
            if self.usual is None:
                self._settle()
            assert self.usual is not None
            held = greedy.index(degraded) <= self.usual
            self.after.append((job - w.degrade_at + 1, order[0] == degraded, held))

    def _settle(self) -> None:
        """Its usual place before the drift, and whether there was a place below it."""
        degraded = self.world.degraded_agent
        places = Counter(g.index(degraded) for g in self.before)
        self.usual = places.most_common(1)[0][0] if places else 0
        self.room_below = any(len(g) > self.usual + 1 for g in self.before)

    @property
    def place(self) -> str:
        """Its usual place before the drift, 1-based ('-' before the drift was seen)."""
        return "-" if self.usual is None else str(self.usual + 1)

    @property
    def noticed_after(self) -> int | None:
        """Jobs after the drift until it was noticed (see the module doc); None: never."""
        primary_rule = self.usual == 0  # the primary slot only matters if it held it
        found: int | None = None
        primaries = 0  # primary slots from text job i to the end of the window
        for i in range(len(self.after) - 1, -1, -1):
            since, primary, held = self.after[i]
            if held:
                break  # its score put it back in its usual place (or higher) here
            primaries += primary
            rare = primaries <= EXPLORE_SHARE * (len(self.after) - i)
            if not primary_rule or (not primary and rare):
                found = since
        return found

    def label(self) -> str:
        if not self.room_below:
            return "n/a"
        after = self.noticed_after
        return "never" if after is None else f"{after} jobs"
