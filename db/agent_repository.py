"""Agents: registration, matching profiles, statistics, health and circuit state."""

from __future__ import annotations

import builtins
import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Row, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from agent_dispatch.db.engine import insert_on_conflict, loaded_as_written
from agent_dispatch.db.matching_filter import (
    PROFILE_COLUMNS,
    PoolRow,
    evidence_from_row,
    pool_params,
    pool_statement,
    pools_params,
    pools_query,
    serves,
)
from agent_dispatch.db.models import Agent, AgentCategoryStats, JobDistributionAgent
from agent_dispatch.domain.breaker import Circuit, circuit_state
from agent_dispatch.domain.matching import NAME_ALL_UP_TO
from agent_dispatch.domain.model import AgentProfile, AgentStats, JobSpec
from agent_dispatch.domain.posterior import Evidence
from agent_dispatch.domain.statuses import AGENT_OPEN


class DuplicateAgent(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"an agent named {name!r} already exists")


class LockedAgent(NamedTuple):
    """An agent as read under its row lock: what a take assigns it by (its address, room and
    circuit) and the record a finish updates (read like an Agent)."""

    id: str
    name: str
    url: str
    token_ref: str | None
    protocol: str
    max_concurrency: int
    in_flight: int
    runs: int
    successes: int
    failures: int
    timeouts: int
    wins: int
    cancelled: int
    reputation: float
    avg_latency_ms: float | None
    success_rate: float | None
    consecutive_failures: int
    circuit_open_until: dt.datetime | None


# A row of the matching prefilter's agent columns (db/matching_filter.py), read like an Agent.
AgentRow = Row[*tuple[Any, ...]] | PoolRow

# A finish's statements, built once from the tables (as distribution_repository's moves):
# every job's end runs them, and building them (and the ORM's flush of loaded Agents) each
# time cost more of the dispatcher's CPU than the database's work on them.
_AGENTS, _LEARNED = Agent.__table__, AgentCategoryStats.__table__
_LOCK = (
    select(*(_AGENTS.c[name] for name in LockedAgent._fields))
    .where(_AGENTS.c.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(_AGENTS.c.id)
    .with_for_update()
)
# The SET clause is the parameters' column names: the record, its circuit and last_run_at.
_SAVE_RECORD = update(_AGENTS).where(_AGENTS.c.id == bindparam("b_id"))  # type: ignore[arg-type]
_EVIDENCE_FIELDS = ("successes", "failures", "censored", "lat_n", "log_sum", "log_sq")
_EVIDENCE = select(
    _LEARNED.c.agent_id, *(_LEARNED.c[n] for n in (*_EVIDENCE_FIELDS, "updated_at"))
).where(
    _LEARNED.c.category == bindparam("b_category"),
    _LEARNED.c.agent_id.in_(bindparam("b_ids", expanding=True)),
)


@functools.cache
def _save_evidence(dialect: str) -> Executable:
    """The evidence upsert, one per dialect: an executemany of one statement."""
    stmt = insert_on_conflict(dialect, _LEARNED)
    fresh = {c: stmt.excluded[c] for c in (*_EVIDENCE_FIELDS, "updated_at")}
    return stmt.on_conflict_do_update(index_elements=["agent_id", "category"], set_=fresh)


def stats_of(agent: Agent | AgentRow | LockedAgent) -> AgentStats:
    return AgentStats(
        runs=agent.runs,
        successes=agent.successes,
        failures=agent.failures,
        timeouts=agent.timeouts,
        wins=agent.wins,
        cancelled=agent.cancelled,
        reputation=agent.reputation,
        avg_latency_ms=agent.avg_latency_ms,
        recent_success_rate=agent.success_rate,
    )


def evidence_of(row: AgentCategoryStats | Row[*tuple[Any, ...]]) -> Evidence:
    return Evidence(
        row.successes,
        row.failures,
        row.censored,
        row.lat_n,
        row.log_sum,
        row.log_sq,
        row.updated_at.timestamp() if row.updated_at else None,
    )


def profile_of(agent: Agent | AgentRow, now: dt.datetime) -> AgentProfile:
    return AgentProfile(
        id=agent.id,
        name=agent.name,
        url=agent.url,
        categories=tuple(agent.categories),
        tags=tuple(agent.tags),
        skill_level=agent.skill_level,
        max_concurrency=agent.max_concurrency,
        active=agent.active,
        healthy=agent.healthy,
        protocol=agent.protocol,
        in_flight=agent.in_flight,
        circuit=circuit_state(agent.circuit_open_until, now).value,
        stats=stats_of(agent),
    )


class Pool(NamedTuple):
    """One job's scored agents, what ranking learned about them in its category, and how
    many agents the record-based rules admitted (more than scored when the pool was cut)."""

    agents: list[AgentProfile]
    evidence: dict[str, Evidence]
    admitted: int


class AgentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, agent: Agent) -> Agent:
        self.session.add(agent)
        try:
            self.session.flush()
        except IntegrityError as exc:
            self.session.rollback()
            raise DuplicateAgent(agent.name) from exc
        return agent

    def get(self, agent_id: str) -> Agent | None:
        return self.session.get(Agent, agent_id)

    def get_by_name(self, name: str) -> Agent | None:
        return self.session.scalars(select(Agent).where(Agent.name == name)).one_or_none()

    def list(self) -> Sequence[Agent]:
        return self.session.scalars(select(Agent).order_by(Agent.name)).all()

    def remove(self, name: str) -> bool:
        agent = self.get_by_name(name)
        if agent is None:
            return False
        self.session.delete(agent)
        self.session.flush()
        return True

    def in_flight_counts(self, agent_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Open calls per agent with any (the kept counter, see models.Agent.in_flight)."""
        stmt = select(Agent.id, Agent.in_flight).where(Agent.in_flight > 0)
        if agent_ids is not None:
            stmt = stmt.where(Agent.id.in_(builtins.list(agent_ids)))
        return dict(self.session.execute(stmt).tuples().all())

    def recount_in_flight(self) -> dict[str, int]:
        """Open calls per agent counted from the rows: what the kept counter must equal (tests)
        and what planning paid per plan before it was kept (benchmarks.matching_scale)."""
        stmt = (
            select(JobDistributionAgent.agent_id, func.count())
            .where(JobDistributionAgent.status.in_(AGENT_OPEN))
            .group_by(JobDistributionAgent.agent_id)
        )
        return {aid: n for aid, n in self.session.execute(stmt).tuples() if aid is not None}

    def profiles(self, now: dt.datetime) -> builtins.list[AgentProfile]:
        """Every agent (operators' views, the explanation of a job nobody serves)."""
        return [profile_of(a, now) for a in self.list()]

    def candidates(self, job: JobSpec, now: dt.datetime) -> builtins.list[AgentProfile]:
        """Agents the job's record-based rules admit, filtered in SQL (indexed on PostgreSQL);
        load-dependent rules (capacity, half-open trial) are left to domain.matching."""
        return self.pool(job, now)[0]

    def pool(
        self, job: JobSpec, now: dt.datetime
    ) -> tuple[builtins.list[AgentProfile], dict[str, Evidence]]:
        """`candidates` with what ranking learned about each in the job's category: one
        round trip per plan."""
        stmt = pool_statement(self.session.get_bind().dialect.name, bool(job.tags))
        profiles, evidence = [], {}
        for row in self.session.execute(stmt, pool_params(job, now)):
            profiles.append(profile_of(row, now))
            ev = evidence_from_row(row)
            if ev is not None:
                evidence[row.id] = ev
        return profiles, evidence

    def pools(
        self, jobs: Sequence[JobSpec], now: dt.datetime, at_most: Sequence[int]
    ) -> builtins.list[Pool]:
        """Each job's admitted agents, the first `at_most[i]` in the cheap scoring order
        (db/matching_filter.py), with their evidence: one round trip per distinct bound on
        PostgreSQL, one per job on SQLite (no LATERAL there; no network either). An agent
        in several jobs' pools is profiled once."""
        dialect = self.session.get_bind().dialect.name
        pools = [Pool([], {}, 0) for _ in jobs]
        seen: dict[str, AgentProfile] = {}
        if dialect == "postgresql":
            query = pools_query()
            # The transaction's own connection, read through a binary cursor (pools_query).
            driver = self.session.connection().connection.driver_connection
            if driver is None:  # (a connection in a transaction always has one)
                raise RuntimeError("the transaction's connection has no driver connection")
            for bound in sorted(set(at_most)):
                index = [i for i, k in enumerate(at_most) if k == bound]
                params = pools_params([jobs[i] for i in index], now, bound)
                with driver.cursor(binary=True) as cursor:
                    rows = cursor.execute(query.sql, {**query.constants, **params}).fetchall()
                for row in rows:
                    self._add(pools, index[row[-1]], row, now, seen)
        else:
            for i, job in enumerate(jobs):
                stmt = pool_statement(dialect, bool(job.tags), bounded=True)
                params = pool_params(job, now, at_most[i])
                for row in self.session.connection().execute(stmt, params).all():
                    self._add(pools, i, row, now, seen)
        return pools

    @staticmethod
    def _add(
        pools: builtins.list[Pool],
        i: int,
        columns: Any,
        now: dt.datetime,
        seen: dict[str, AgentProfile],
    ) -> None:
        row = PoolRow(*columns)
        profile = seen.get(row.id)
        if profile is None:
            profile = seen[row.id] = profile_of(row, now)
        pool = pools[i]
        pool.agents.append(profile)
        ev = evidence_from_row(row)
        if ev is not None:
            pool.evidence[row.id] = ev
        if row.admitted != pool.admitted:
            pools[i] = pool._replace(admitted=row.admitted)

    def others(self, agent_ids: Iterable[str], now: dt.datetime) -> builtins.list[AgentProfile]:
        """Every agent but these (a small fleet's explanation), as matching sees them."""
        stmt = select(*PROFILE_COLUMNS).where(Agent.id.not_in(builtins.list(agent_ids)))
        return [profile_of(row, now) for row in self.session.execute(stmt)]

    def count_up_to(self, limit: int) -> int:
        """How many agents there are, counting no further than `limit` (bounded work)."""
        first = select(Agent.id).limit(limit).subquery()
        return self.session.scalar(select(func.count()).select_from(first)) or 0

    def serving(self, category: str, now: dt.datetime) -> tuple[builtins.list[AgentProfile], int]:
        """Agents listing the category (indexed), and how many agents do not."""
        dialect = self.session.get_bind().dialect.name
        stmt = select(*PROFILE_COLUMNS).where(serves(dialect))
        rows = self.session.execute(stmt, {"categories": [category]})
        pool = [profile_of(row, now) for row in rows]
        total = self.session.scalar(select(func.count()).select_from(Agent)) or 0
        return pool, total - len(pool)

    def judged_pool(
        self, category: str, now: dt.datetime, small: bool
    ) -> tuple[builtins.list[AgentProfile], int]:
        """The agents an unserved job is explained by, and how many others there are: every
        agent of a small fleet, else those listing its category (`serving`)."""
        if small:
            return self.profiles(now), 0
        return self.serving(category, now)

    def is_small_fleet(self) -> bool:
        """At most NAME_ALL_UP_TO agents (counted no further): explained agent by agent."""
        return self.count_up_to(NAME_ALL_UP_TO + 1) <= NAME_ALL_UP_TO

    def lock(self, agent_ids: Iterable[str]) -> builtins.list[LockedAgent]:
        """Row-lock agents (in id order, so concurrent claims cannot deadlock), read as
        committed: the trigger-kept in_flight is the current one."""
        rows = self.session.execute(_LOCK, {"b_ids": sorted(set(agent_ids))})
        return [LockedAgent(*row) for row in rows]

    def save_records(
        self, now: dt.datetime, records: Sequence[tuple[str, AgentStats, Circuit]]
    ) -> None:
        """Store agents' statistics and circuit state after their calls, one statement for all
        (an executemany); callers hold the agents' row locks (`lock`)."""
        if not records:
            return
        written = {
            agent_id: {
                "runs": stats.runs,
                "successes": stats.successes,
                "failures": stats.failures,
                "timeouts": stats.timeouts,
                "wins": stats.wins,
                "cancelled": stats.cancelled,
                "reputation": stats.reputation,
                # The decayed rate once analytics has computed one; the plain ratio until then.
                "success_rate": (
                    stats.recent_success_rate
                    if stats.recent_success_rate is not None
                    else stats.success_rate
                ),
                "avg_latency_ms": stats.avg_latency_ms,
                "last_run_at": now,
                "consecutive_failures": circuit.consecutive_failures,
                "circuit_open_until": circuit.open_until,
            }
            for agent_id, stats, circuit in records
        }
        self.session.execute(_SAVE_RECORD, [{"b_id": k, **v} for k, v in written.items()])
        for agent_id, values in written.items():
            loaded_as_written(self.session, Agent, agent_id, values)

    def evidence(self, category: str, agent_ids: Iterable[str]) -> dict[str, Evidence]:
        """What ranking learned about these agents in this category (absent: nothing yet)."""
        params = {"b_category": category, "b_ids": builtins.list(agent_ids)}
        return {row.agent_id: evidence_of(row) for row in self.session.execute(_EVIDENCE, params)}

    def save_evidence(self, category: str, learned: dict[str, Evidence]) -> None:
        """Store agents' evidence in one category, one statement for all of them (an upsert);
        callers hold the agents' row locks (see `lock`)."""
        if not learned:
            return
        rows = [
            {
                "agent_id": agent_id,
                "category": category,
                "successes": ev.successes,
                "failures": ev.failures,
                "censored": ev.censored,
                "lat_n": ev.lat_n,
                "log_sum": ev.log_sum,
                "log_sq": ev.log_sq,
                "updated_at": (
                    dt.datetime.fromtimestamp(ev.updated_at, dt.UTC)
                    if ev.updated_at is not None
                    else None
                ),
            }
            for agent_id, ev in sorted(learned.items())
        ]
        self.session.execute(_save_evidence(self.session.get_bind().dialect.name), rows)

    def record_health(
        self, agent: Agent, healthy: bool, detail: str | None, now: dt.datetime
    ) -> None:
        agent.healthy = healthy
        agent.health_detail = detail
        agent.health_checked_at = now
