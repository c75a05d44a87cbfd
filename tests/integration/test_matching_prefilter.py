"""The SQL prefilter and domain.matching's rules pick the same agents, on both dialects.

A seeded table of agents crossing every rule (state, protocol, health, circuit at its
boundary, categories and tags with near-miss spellings, skill) against many job specs: the
prefilter must admit exactly the agents the domain does not exclude for a record-based
reason (load-dependent rules are the domain's alone), so it can neither hide an eligible
agent nor leave the domain one it would have to reject by record.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from agent_dispatch.db.matching_filter import EVIDENCE_COLUMNS, PROFILE_COLUMNS, PoolRow
from agent_dispatch.db.types import utcnow
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.matching import LOAD_DEPENDENT, exclusion
from agent_dispatch.domain.model import AgentProfile, JobSpec
from agent_dispatch.domain.posterior import Evidence
from tests.support.matching_tables import fleet, jobs, pg_sessions, seed, sqlite_sessions


def assert_prefilter_agrees(factory: sessionmaker[Session]) -> None:
    rng = random.Random(8)
    now = utcnow()
    seed(factory, fleet(rng, 400, now))
    specs = jobs(rng, 60)
    with UnitOfWork(factory) as uow:  # some learned evidence, in some categories
        for i, a in enumerate(uow.agents.list()):
            for category in a.categories[: i % 3]:
                uow.agents.save_evidence(
                    category, {a.id: Evidence(i % 7, 1.0, 0.5, updated_at=9.0)}
                )
        uow.commit()
    admitted_somewhere = 0
    with UnitOfWork(factory) as uow:
        everyone = uow.agents.profiles(now)
        for spec in specs:
            expected = {
                a.name
                for a in everyone
                if (found := exclusion(spec, a)) is None or found[0] in LOAD_DEPENDENT
            }
            admitted, learned = uow.agents.pool(spec, now)
            got = [a.name for a in admitted]
            # Ranking gets the same evidence the per-agent query gives.
            assert learned == uow.agents.evidence(spec.category, (a.id for a in admitted))
            assert len(got) == len(set(got))
            assert set(got) == expected, spec
            admitted_somewhere += bool(expected)
            serving = {a.name for a in everyone if spec.category in a.categories}
            pool, outside = uow.agents.serving(spec.category, now)
            assert {a.name for a in pool} == serving
            assert outside == len(everyone) - len(serving)
    # The table is not degenerate: most specs admit someone, some admit nobody.
    assert len(specs) // 2 < admitted_somewhere < len(specs)
    assert_bounded_pools_cut_in_order(factory, specs)


def assert_bounded_pools_cut_in_order(factory: sessionmaker[Session], specs: list[JobSpec]) -> None:
    """A bounded pool (many jobs at once) is the admitted agents' first few in the scoring
    order: agents with room before full ones, then by reputation; `admitted` counts them all;
    each agent and its evidence read as a single job's pool reads them."""
    now = utcnow()
    with UnitOfWork(factory) as uow:  # some agents full, some half-open with a call under way
        for i, a in enumerate(uow.agents.list()):
            a.in_flight = (i % 3) * a.max_concurrency // 2
            a.reputation = (i * 37 % 50) / 50  # ties too
        uow.commit()
    with UnitOfWork(factory) as uow:
        bounded = uow.agents.pools(specs, now, [3 + i % 5 for i in range(len(specs))])
        for i, (spec, pool) in enumerate(zip(specs, bounded, strict=True)):
            everyone, learned = uow.agents.pool(spec, now)
            assert pool.admitted == len(everyone)
            assert len(pool.agents) == min(3 + i % 5, len(everyone))
            assert {a.id: learned.get(a.id) for a in pool.agents} == {
                a.id: pool.evidence.get(a.id) for a in pool.agents
            }
            # Read as `pool` reads them, field for field (PostgreSQL reads pools in binary).
            as_read = {a.id: a for a in everyone}
            assert [as_read[a.id] for a in pool.agents] == pool.agents
            order = sorted(everyone, key=lambda a: (not has_room(a), -a.stats.reputation, a.id))
            assert [(has_room(a), a.stats.reputation) for a in pool.agents] == [
                (has_room(a), a.stats.reputation) for a in order[: len(pool.agents)]
            ]


def has_room(agent: AgentProfile) -> bool:
    found = exclusion(JobSpec("q", "t", agent.categories[0] if agent.categories else ""), agent)
    return found is None or found[0] not in LOAD_DEPENDENT


def test_pool_rows_name_the_statements_columns_in_order() -> None:
    names = [c.key for c in PROFILE_COLUMNS] + ["ev_" + c.key for c in EVIDENCE_COLUMNS]
    assert list(PoolRow._fields) == [*names, "admitted", "n"]


def test_sqlite_prefilter_admits_exactly_the_agents_the_domain_rules_admit(
    tmp_path: Path,
) -> None:
    with sqlite_sessions(tmp_path) as factory:
        assert_prefilter_agrees(factory)


@pytest.mark.postgres
def test_postgres_prefilter_admits_exactly_the_agents_the_domain_rules_admit(
    database_url: str,
) -> None:
    with pg_sessions(database_url) as factory:
        assert_prefilter_agrees(factory)
