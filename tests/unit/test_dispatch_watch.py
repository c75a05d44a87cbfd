"""How the simulation decides that a ranking noticed the degraded agent."""

from __future__ import annotations

from benchmarks.dispatch_sim import make_world
from benchmarks.dispatch_watch import DriftWatch

WORLD = make_world(1000)  # steady degrades at job 500
BEFORE = ["steady", "swift", "careful"]
AFTER = ["swift", "careful", "steady"]


def _watch(after: list[tuple[list[str], list[str]]], before: list[str] = BEFORE) -> DriftWatch:
    watch = DriftWatch(WORLD)
    for job in range(400, 500):
        watch.saw(job, "text", before, before, before[:1])
    for offset, (order, greedy) in enumerate(after):
        watch.saw(500 + offset, "text", order, greedy, order[:1])
    return watch


def test_noticed_when_its_score_loses_its_usual_place_and_stays_out_of_it() -> None:
    watch = _watch([(BEFORE, BEFORE)] * 7 + [(AFTER, AFTER)] * 100)
    assert watch.place == "1"
    assert watch.noticed_after == 8 and watch.label() == "8 jobs"


def test_a_score_back_in_its_usual_place_later_moves_the_notice_after_it() -> None:
    watch = _watch([(AFTER, AFTER)] * 20 + [(BEFORE, BEFORE)] + [(AFTER, AFTER)] * 80)
    assert watch.noticed_after == 22


def test_sampled_primary_picks_beyond_one_in_ten_are_still_relying_on_it() -> None:
    # Its score is below swift, but sampling keeps making it the primary every third job.
    runs = [(BEFORE if i % 3 == 0 else AFTER, AFTER) for i in range(60)] + [(AFTER, AFTER)] * 60
    # From job 35 on, 9 of the 86 text jobs left in the window gave it the slot (<= 10%).
    assert _watch(runs).noticed_after == 35
    occasional = [(BEFORE if i % 20 == 0 else AFTER, AFTER) for i in range(1, 121)]
    assert _watch(occasional).noticed_after == 1  # 1 in 20: exploration, allowed


def test_an_agent_that_was_the_backup_is_noticed_when_it_loses_the_backup_place() -> None:
    backup = ["swift", "steady", "careful"]
    watch = _watch([(backup, backup)] * 5 + [(AFTER, AFTER)] * 50, before=backup)
    assert watch.place == "2"
    assert watch.noticed_after == 6


def test_never_noticed_while_its_score_stays_on_top() -> None:
    assert _watch([(BEFORE, BEFORE)] * 50).label() == "never"
