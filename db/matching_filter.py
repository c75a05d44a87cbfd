"""The matching prefilter: domain.matching's record-based rules as one SQL condition.

Planning loads only the agents this condition admits, so a plan costs the size of the
eligible set, not of the fleet. domain.matching.exclusion stays the one spelling of
eligibility: every agent loaded here is judged by it again, and
tests/integration/test_matching_prefilter.py (on SQLite and PostgreSQL) checks that this
condition admits exactly the agents the domain does not exclude for a record-based reason.
Load-dependent rules (domain.matching.LOAD_DEPENDENT) are left to the domain.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    text,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, psycopg
from sqlalchemy.sql import Executable, Select

from agent_dispatch.db.models import Agent, AgentCategoryStats
from agent_dispatch.db.types import UTCDateTime
from agent_dispatch.domain.matching import SUPPORTED_PROTOCOLS
from agent_dispatch.domain.model import JobSpec
from agent_dispatch.domain.posterior import Evidence

# What matching and ranking read, nothing more: a plan pays for every column of every row.
PROFILE_COLUMNS = (
    Agent.id,
    Agent.name,
    Agent.url,
    Agent.categories,
    Agent.tags,
    Agent.skill_level,
    Agent.max_concurrency,
    Agent.active,
    Agent.healthy,
    Agent.protocol,
    Agent.in_flight,
    Agent.consecutive_failures,
    Agent.circuit_open_until,
    Agent.runs,
    Agent.successes,
    Agent.failures,
    Agent.timeouts,
    Agent.wins,
    Agent.cancelled,
    Agent.reputation,
    Agent.avg_latency_ms,
    Agent.success_rate,
)


def _contains(column: Any, param: str, dialect: str) -> ColumnElement[bool]:
    """The JSON array column holds every string of the JSON array bound to `param`."""
    if dialect == "postgresql":
        # Containment: answered by the column's GIN (jsonb_path_ops) index.
        return column.op("@>")(bindparam(param, type_=JSONB))  # type: ignore[no-any-return]
    table, name = column.table.name, column.name
    return text(
        f"NOT EXISTS (SELECT 1 FROM json_each(:{param}) AS want WHERE want.value NOT IN "
        f"(SELECT value FROM json_each({table}.{name})))"
    ).bindparams(bindparam(param, type_=JSON))  # type: ignore[return-value]


def serves(dialect: str) -> ColumnElement[bool]:
    """Agents listing the category bound as `categories` (a one-element list)."""
    return _contains(Agent.categories, "categories", dialect)


def _record_rules(dialect: str, tags: bool) -> ColumnElement[bool]:
    """Every domain rule but the load-dependent ones, in SQL (order does not matter here)."""
    conds = [
        *_agent_rules(),
        serves(dialect),
        Agent.skill_level >= bindparam("skill", type_=Integer()),
    ]
    if tags:
        conds.append(_contains(Agent.tags, "tags", dialect))
    return and_(*conds)


def _agent_rules() -> list[ColumnElement[bool]]:
    """The rules that read the agent alone (no job): state, protocol, health, circuit."""
    return [
        Agent.active.is_(True),
        Agent.protocol.in_(sorted(SUPPORTED_PROTOCOLS)),
        or_(Agent.healthy.is_(None), Agent.healthy.is_(True)),
        # breaker.Circuit: open while now < open_until.
        or_(
            Agent.circuit_open_until.is_(None),
            Agent.circuit_open_until <= bindparam("now", type_=UTCDateTime()),
        ),
    ]


EVIDENCE_COLUMNS = (
    AgentCategoryStats.successes,
    AgentCategoryStats.failures,
    AgentCategoryStats.censored,
    AgentCategoryStats.lat_n,
    AgentCategoryStats.log_sum,
    AgentCategoryStats.log_sq,
    AgentCategoryStats.updated_at,
)


def _with_evidence(category: Any) -> Select[*tuple[Any, ...]]:
    """The agents joined to what ranking learned about each in `category` (NULL: nothing)."""
    joined = and_(AgentCategoryStats.agent_id == Agent.id, AgentCategoryStats.category == category)
    return select(*PROFILE_COLUMNS, *EVIDENCE_COLUMNS).outerjoin(AgentCategoryStats, joined)


# The cheap order of a bounded pool (kube-scheduler's percentageOfNodesToScore): agents with
# room first, so a free agent is never left unscored behind busy ones; then the best
# reputation (the decayed record every finished call updates; a newcomer starts at 0.5), id
# last for a deterministic cut. Rows past the cut are counted (`admitted`), never decoded.
def _scoring_order() -> tuple[Any, ...]:
    full = or_(
        Agent.in_flight >= Agent.max_concurrency,
        and_(Agent.circuit_open_until.is_not(None), Agent.in_flight >= 1),  # half-open trial
    )
    return case((full, 1), else_=0), Agent.reputation.desc(), Agent.id


@functools.cache
def pool_statement(dialect: str, tags: bool, bounded: bool = False) -> Executable:
    """Built once per shape (statement caching does the rest): the admitted agents with what
    ranking learned about each in the job's category (outer join: nothing yet is NULL).
    Bounded: the first `at_most` in the scoring order, each row with the admitted count."""
    stmt = _with_evidence(bindparam("category", type_=String())).where(_record_rules(dialect, tags))
    if not bounded:
        return stmt
    return (
        stmt.add_columns(func.count().over().label("admitted"))
        .order_by(*_scoring_order())
        .limit(bindparam("at_most", type_=Integer()))
    )


def _plain(column: Any) -> Any:
    """A column as PostgreSQL can hand it over cheapest: timestamptz comes back aware already
    (no UTCDateTime call per value: that exists for SQLite's naive values), and a JSON array
    of strings as a text[] (psycopg reads arrays in C; JSON costs a json.loads per value)."""
    if isinstance(column.type, UTCDateTime):
        return type_coerce(column, DateTime(timezone=True)).label(column.key)
    if column.key in ("categories", "tags"):
        elements = select(func.jsonb_array_elements_text(column)).correlate(Agent)
        return func.array(elements.scalar_subquery()).label(column.key)
    return column


@functools.cache
def pools_statement() -> Select[*tuple[Any, ...]]:
    """PostgreSQL: the bounded pools of many jobs in one round trip. One row per job (`n`)
    from arrays bound once, each joined LATERAL to its own bounded pool; the same rules as
    `pool_statement` (the category's GIN index answers each job)."""
    want = (
        func.unnest(
            bindparam("ns", type_=ARRAY(Integer())),
            bindparam("cats", type_=ARRAY(String())),
            bindparam("tagss", type_=ARRAY(String())),  # JSON arrays as text, '[]': any
            bindparam("skills", type_=ARRAY(Integer())),
        )
        .table_valued("n", "cat", "tags", "skill")
        .render_derived(name="want")
    )
    wanted_tags = cast(want.c.tags, JSONB)
    # The cut on narrow rows (id, order keys, the count), the wide columns read for the
    # agents it keeps only: sorting and counting a large category's whole pool with every
    # column cost PostgreSQL more than finding it.
    kept = (
        select(Agent.id.label("agent_id"), func.count().over().label("admitted"))
        .where(
            *_agent_rules(),
            Agent.categories.op("@>")(func.jsonb_build_array(want.c.cat)),
            Agent.skill_level >= want.c.skill,
            or_(want.c.tags == "[]", Agent.tags.op("@>")(wanted_tags)),
        )
        .order_by(*_scoring_order())
        .limit(bindparam("at_most", type_=Integer()))
        .correlate_except(Agent)  # its own agents; the outer query reads them again by id
        .lateral("kept")
    )
    learned = and_(
        AgentCategoryStats.agent_id == Agent.id, AgentCategoryStats.category == want.c.cat
    )
    return (
        select(*(_plain(c) for c in (*PROFILE_COLUMNS, *EVIDENCE_COLUMNS)))
        .add_columns(kept.c.admitted, want.c.n)
        .select_from(want)
        .join(kept, true())
        .join(Agent, Agent.id == kept.c.agent_id)
        .outerjoin(AgentCategoryStats, learned)
        .order_by(want.c.n, *_scoring_order())
    )


def pool_params(job: JobSpec, now: dt.datetime, at_most: int | None = None) -> dict[str, Any]:
    return {
        "categories": [job.category],
        "category": job.category,
        "tags": sorted(set(job.tags)),
        "skill": job.skill_level,
        "now": now,
        "at_most": at_most,
    }


def pools_params(jobs: list[JobSpec], now: dt.datetime, at_most: int) -> dict[str, Any]:
    return {
        "ns": list(range(len(jobs))),
        "cats": [j.category for j in jobs],
        "tagss": [json.dumps(sorted(set(j.tags))) for j in jobs],
        "skills": [j.skill_level for j in jobs],
        "now": now,
        "at_most": at_most,
    }


class DriverQuery(NamedTuple):
    """A statement as the driver runs it: SQL in psycopg's style and its own constants."""

    sql: str
    constants: dict[str, Any]


@functools.cache
def pools_query() -> DriverQuery:
    """`pools_statement` for a binary psycopg cursor (AgentRepository.pools). SQLAlchemy's
    psycopg dialect reads every result as text; a batch's pool rows (some 30 per job, 31
    columns) decode in half the time as binary. Compiled and expanded once: the statement
    text does not depend on the values bound at run time, only its constants are added."""
    compiled = pools_statement().compile(dialect=psycopg.dialect())  # type: ignore[no-untyped-call]
    runtime = pools_params([], dt.datetime.now(dt.UTC), 0)
    expanded = compiled.construct_expanded_state(runtime)
    constants = {k: v for k, v in expanded.parameters.items() if k not in runtime}
    return DriverQuery(expanded.statement, constants)


class PoolRow(NamedTuple):
    """A pool row by position, read like an Agent (profile_of, stats_of): SQLAlchemy's Row
    looks each attribute up by name (~0.4 us), and a plan reads some 30 per agent."""

    id: str
    name: str
    url: str
    categories: list[str]
    tags: list[str]
    skill_level: int
    max_concurrency: int
    active: bool
    healthy: bool | None
    protocol: str
    in_flight: int
    consecutive_failures: int
    circuit_open_until: dt.datetime | None
    runs: int
    successes: int
    failures: int
    timeouts: int
    wins: int
    cancelled: int
    reputation: float
    avg_latency_ms: float | None
    success_rate: float | None
    ev_successes: float | None
    ev_failures: float | None
    ev_censored: float | None
    ev_lat_n: float | None
    ev_log_sum: float | None
    ev_log_sq: float | None
    ev_updated_at: dt.datetime | None
    admitted: int
    n: int = 0  # the job's place in a batch (pools_statement)


def evidence_from_row(row: Any) -> Evidence | None:
    start = len(PROFILE_COLUMNS)
    successes, failures, censored, lat_n, log_sum, log_sq, at = row[start : start + 7]
    if successes is None:
        return None
    when = at.timestamp() if at else None
    return Evidence(successes, failures, censored, lat_n, log_sum, log_sq, when)
