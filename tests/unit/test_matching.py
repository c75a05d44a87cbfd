"""Matching: eligibility rules one by one, ranking, the maxAgents limit and the decisions."""

from __future__ import annotations

import random
from typing import Any

import pytest

from agent_dispatch.domain.matching import Decision, MatchResult, exclusion_reason, match
from agent_dispatch.domain.model import AgentProfile, AgentStats, JobSpec
from agent_dispatch.domain.ranking import rank_score


def job(**overrides: Any) -> JobSpec:
    base: dict[str, Any] = {
        "queue_task_id": "t-1",
        "title": "Summarise",
        "category": "text",
        "tags": ("en",),
        "skill_level": 2,
    }
    base.update(overrides)
    return JobSpec(**base)


def agent(name: str, **overrides: Any) -> AgentProfile:
    base: dict[str, Any] = {
        "id": f"id-{name}",
        "name": name,
        "url": f"https://{name}.example.com",
        "categories": ("text",),
        "tags": ("en",),
        "skill_level": 3,
        "max_concurrency": 2,
        "healthy": True,
    }
    base.update(overrides)
    return AgentProfile(**base)


def stats(successes: int, failures: int, reputation: float = 0.5, **kw: Any) -> AgentStats:
    return AgentStats(
        runs=successes + failures,
        successes=successes,
        failures=failures,
        reputation=reputation,
        **kw,
    )


# -- eligibility, one rule at a time ----------------------------------------------------------


def test_baseline_agent_is_eligible() -> None:
    assert exclusion_reason(job(), agent("a")) is None
    result = match(job(), [agent("a")], limit=3)
    assert [a.name for a in result.chosen] == ["a"]
    assert result.busy == 0


def test_never_probed_agent_is_eligible() -> None:
    never_probed = agent("a", healthy=None)
    assert exclusion_reason(job(), never_probed) is None
    assert [a.name for a in match(job(), [never_probed], limit=1).chosen] == ["a"]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"active": False}, "inactive"),
        ({"protocol": "grpc"}, "protocol 'grpc' has no client in this version"),
        ({"healthy": False}, "unhealthy"),
        ({"circuit": "open"}, "circuit open after repeated failures"),
        (
            {"circuit": "half-open", "in_flight": 1},
            "circuit half-open: its one trial call is under way",
        ),
        ({"in_flight": 2, "max_concurrency": 2}, "at max concurrency (2/2)"),
        ({"in_flight": 5, "max_concurrency": 2}, "at max concurrency (5/2)"),
        ({"categories": ("code", "image")}, "category 'text' not in ['code', 'image']"),
        ({"categories": ()}, "category 'text' not in []"),
        ({"tags": ()}, "missing tags en"),
        ({"tags": ("de", "fr")}, "missing tags en"),
        ({"skill_level": 1}, "skill level 1 < required 2"),
    ],
    ids=[
        "inactive",
        "unsupported-protocol",
        "unhealthy",
        "circuit-open",
        "circuit-half-open-trial-under-way",
        "at-capacity",
        "over-capacity",
        "category-missing",
        "no-categories",
        "no-tags",
        "other-tags",
        "skill-too-low",
    ],
)
def test_each_rule_excludes_with_its_reason(overrides: dict[str, Any], reason: str) -> None:
    bad = agent("bad", **overrides)
    assert exclusion_reason(job(), bad) == reason
    result = match(job(), [bad], limit=3)
    assert result.chosen == ()
    assert result.decisions == (Decision("id-bad", "bad", False, False, reason, None, None),)


def test_every_missing_tag_is_named_in_the_reason() -> None:
    spec = job(tags=("python", "en", "sql"))
    assert exclusion_reason(spec, agent("a", tags=("en",))) == "missing tags python, sql"
    assert exclusion_reason(spec, agent("a", tags=("en", "sql"))) == "missing tags python"


def test_extra_agent_tags_and_categories_do_not_matter() -> None:
    generalist = agent("a", categories=("code", "text"), tags=("de", "en", "sql"))
    assert exclusion_reason(job(), generalist) is None


def test_skill_equal_to_required_is_enough() -> None:
    assert exclusion_reason(job(skill_level=3), agent("a", skill_level=3)) is None
    assert exclusion_reason(job(skill_level=4), agent("a", skill_level=3)) == (
        "skill level 3 < required 4"
    )


def test_one_below_capacity_is_eligible() -> None:
    assert exclusion_reason(job(), agent("a", in_flight=1, max_concurrency=2)) is None


def test_capacity_check_can_be_switched_off() -> None:
    full = agent("a", in_flight=2, max_concurrency=2)
    assert exclusion_reason(job(), full, capacity=False) is None


def test_rules_are_checked_in_order() -> None:
    everything_wrong = agent(
        "a",
        active=False,
        healthy=False,
        circuit="open",
        in_flight=9,
        categories=(),
        tags=(),
        skill_level=1,
    )
    assert exclusion_reason(job(), everything_wrong) == "inactive"
    assert exclusion_reason(job(), everything_wrong._replace(active=True)) == ("unhealthy")
    grpc = everything_wrong._replace(active=True, protocol="grpc")
    assert exclusion_reason(job(), grpc) == "protocol 'grpc' has no client in this version"


# -- ranking and the limit ----------------------------------------------------------------------


def test_ranked_best_first_and_top_n_kept() -> None:
    agents = [
        agent("poor", stats=stats(10, 40, reputation=0.2)),
        agent("great", stats=stats(95, 5, reputation=0.9)),
        agent("new"),
        agent("good", stats=stats(40, 10, reputation=0.7)),
    ]
    result = match(job(), agents, limit=2)
    assert [a.name for a in result.chosen] == ["great", "good"]
    ranked = [d for d in result.decisions if d.eligible]
    assert [(d.agent_name, d.rank, d.chosen) for d in ranked] == [
        ("great", 1, True),
        ("good", 2, True),
        ("new", 3, False),
        ("poor", 4, False),
    ]
    by_name = {a.name: a for a in agents}
    for d in ranked:
        expected = rank_score(by_name[d.agent_name].stats)
        assert d.score == round(expected, 4)
        suffix = "" if d.chosen else " (only top 2 taken)"
        assert d.reason == f"rank {d.rank} by score {expected:.3f}{suffix}"
    assert result.summary == "chose great, good"


def test_limit_larger_than_pool_takes_all_eligible() -> None:
    result = match(job(), [agent("a"), agent("b")], limit=10)
    assert {a.name for a in result.chosen} == {"a", "b"}
    assert all(d.chosen for d in result.decisions)
    assert not any("only top" in d.reason for d in result.decisions)


def test_limit_one_takes_only_the_best() -> None:
    agents = [agent("b", stats=stats(1, 9)), agent("a", stats=stats(9, 1))]
    result = match(job(), agents, limit=1)
    assert [a.name for a in result.chosen] == ["a"]
    loser = next(d for d in result.decisions if d.agent_name == "b")
    assert loser.eligible is True
    assert loser.chosen is False
    assert loser.rank == 2
    assert loser.reason.endswith(" (only top 1 taken)")


@pytest.mark.parametrize("limit", [0, -1, -10])
def test_limit_below_one_raises(limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        match(job(), [agent("a")], limit=limit)


def test_a_decision_for_every_candidate() -> None:
    agents = [
        agent("off", active=False),
        agent("ok1"),
        agent("wrong-cat", categories=("code",)),
        agent("ok2", stats=stats(5, 0)),
        agent("weak", skill_level=1),
    ]
    result = match(job(), agents, limit=1)
    assert sorted(d.agent_name for d in result.decisions) == sorted(a.name for a in agents)
    assert len(result.decisions) == len(agents)
    # Ranked candidates come first (best first), then the excluded ones in input order.
    assert [(d.agent_name, d.eligible, d.chosen) for d in result.decisions] == [
        ("ok2", True, True),
        ("ok1", True, False),
        ("off", False, False),
        ("wrong-cat", False, False),
        ("weak", False, False),
    ]
    excluded = {d.agent_name: d for d in result.decisions if not d.eligible}
    assert excluded["off"].reason == "inactive"
    assert excluded["wrong-cat"].reason == "category 'text' not in ['code']"
    assert excluded["weak"].reason == "skill level 1 < required 2"
    assert all(d.score is None and d.rank is None for d in excluded.values())
    assert result.decisions[0].as_dict() == {
        "agent_id": "id-ok2",
        "agent_name": "ok2",
        "eligible": True,
        "chosen": True,
        "reason": f"rank 1 by score {rank_score(stats(5, 0)):.3f}",
        "score": round(rank_score(stats(5, 0)), 4),
        "rank": 1,
    }


def test_busy_counts_only_agents_excluded_by_capacity_alone() -> None:
    agents = [
        agent("full1", in_flight=2, max_concurrency=2),
        agent("full2", in_flight=1, max_concurrency=1),
        # Full, but also wrong category: it would not fit even when free.
        agent("full-wrong-cat", in_flight=1, max_concurrency=1, categories=("code",)),
        # Full and inactive: reported as inactive, not busy.
        agent("full-inactive", in_flight=1, max_concurrency=1, active=False),
        agent("full-low-skill", in_flight=1, max_concurrency=1, skill_level=1),
        # Full, but no client for its protocol: it could not be called when free either.
        agent("full-grpc", in_flight=1, max_concurrency=1, protocol="grpc"),
        agent("unhealthy", healthy=False),
    ]
    result = match(job(), agents, limit=3)
    assert result.chosen == ()
    assert result.busy == 2
    reasons = {d.agent_name: d.reason for d in result.decisions}
    assert reasons == {
        "full1": "at max concurrency (2/2)",
        "full2": "at max concurrency (1/1)",
        "full-wrong-cat": "at max concurrency (1/1)",
        "full-inactive": "inactive",
        "full-low-skill": "at max concurrency (1/1)",
        "full-grpc": "protocol 'grpc' has no client in this version",
        "unhealthy": "unhealthy",
    }


def test_busy_is_zero_when_agents_are_chosen_and_none_full() -> None:
    result = match(job(), [agent("a"), agent("b", active=False)], limit=3)
    assert result.busy == 0


def test_summary_lists_every_exclusion_when_nobody_fits() -> None:
    result = match(job(), [agent("a", active=False), agent("b", tags=())], limit=2)
    assert result.summary == "no eligible agent (a: inactive; b: missing tags en)"
    assert match(job(), [], limit=2).summary == "no eligible agent"
    assert match(job(), [], limit=2) == MatchResult((), (), 0)


# -- deterministic tie-break ----------------------------------------------------------------


def test_equal_scores_break_on_latency_then_name() -> None:
    same = stats(3, 1, reputation=0.6)
    agents = [
        agent("zeta", stats=same._replace(avg_latency_ms=100.0)),
        agent("alpha", stats=same._replace(avg_latency_ms=300.0)),
        agent("beta", stats=same._replace(avg_latency_ms=None)),
        agent("gamma", stats=same._replace(avg_latency_ms=100.0)),
        agent("aardvark", stats=same._replace(avg_latency_ms=None)),
    ]
    expected = ["gamma", "zeta", "alpha", "aardvark", "beta"]
    for seed in range(10):
        shuffled = agents[:]
        random.Random(seed).shuffle(shuffled)
        result = match(job(), shuffled, limit=5)
        assert [a.name for a in result.chosen] == expected
        assert [d.rank for d in result.decisions] == [1, 2, 3, 4, 5]


def test_score_beats_latency() -> None:
    slow_good = agent("slow", stats=stats(50, 0, reputation=0.9, avg_latency_ms=5000.0))
    fast_bad = agent("fast", stats=stats(0, 50, reputation=0.1, avg_latency_ms=10.0))
    result = match(job(), [fast_bad, slow_good], limit=1)
    assert [a.name for a in result.chosen] == ["slow"]


def test_input_order_does_not_change_the_result() -> None:
    agents = [agent(f"a{i}", stats=stats(i % 4, 3 - i % 4)) for i in range(8)]
    first = match(job(), agents, limit=3)
    second = match(job(), list(reversed(agents)), limit=3)
    assert [a.name for a in first.chosen] == [a.name for a in second.chosen]
    ranked_first = [d for d in first.decisions if d.eligible]
    ranked_second = [d for d in second.decisions if d.eligible]
    assert ranked_first == ranked_second
