"""The matching prefilter: domain.matching's record-based rules as one SQL condition.

Planning loads only the agents this condition admits, so a plan costs the size of the
eligible set, not of the fleet. domain.matching.exclusion stays the one spelling of
eligibility: every agent loaded here is judged by it again, and
tests/integration/test_matching_prefilter_pg.py (with its SQLite twin) checks that this
condition admits exactly the agents the domain does not exclude for a record-based reason.
Load-dependent rules (domain.matching.LOAD_DEPENDENT) are left to the domain.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB

from agent_dispatch.db.models import Agent
from agent_dispatch.domain.breaker import Circuit
from agent_dispatch.domain.matching import SUPPORTED_PROTOCOLS
from agent_dispatch.domain.model import AgentProfile, AgentStats, JobSpec

# What matching and ranking read: no URL-independent extras, no health text, no timestamps
# beyond the circuit's (a plan over thousands of agents pays for every column).
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


def profile_from_row(row: Any, now: dt.datetime) -> AgentProfile:
    return AgentProfile(
        id=row.id,
        name=row.name,
        url=row.url,
        categories=tuple(row.categories),
        tags=tuple(row.tags),
        skill_level=row.skill_level,
        max_concurrency=row.max_concurrency,
        active=row.active,
        healthy=row.healthy,
        protocol=row.protocol,
        in_flight=row.in_flight,
        circuit=Circuit(row.consecutive_failures, row.circuit_open_until).state(now).value,
        stats=AgentStats(
            runs=row.runs,
            successes=row.successes,
            failures=row.failures,
            timeouts=row.timeouts,
            wins=row.wins,
            cancelled=row.cancelled,
            reputation=row.reputation,
            avg_latency_ms=row.avg_latency_ms,
            recent_success_rate=row.success_rate,
        ),
    )


def _lists(column: Any, values: list[str], dialect: str) -> ColumnElement[bool]:
    """The JSON array column holds every one of `values`."""
    if dialect == "postgresql":
        # Containment: answered by the column's GIN (jsonb_path_ops) index.
        return column.op("@>")(literal(values, JSONB))  # type: ignore[no-any-return]
    conds = []
    for value in values:
        items = func.json_each(column).table_valued("value")
        conds.append(select(1).select_from(items).where(items.c.value == value).exists())
    return and_(True, *conds)


def serves(category: str, dialect: str) -> ColumnElement[bool]:
    return _lists(Agent.categories, [category], dialect)


def eligible_for(job: JobSpec, now: dt.datetime, dialect: str) -> ColumnElement[bool]:
    """Every domain rule but the load-dependent ones, in SQL (order does not matter here)."""
    conds = [
        Agent.active.is_(True),
        Agent.protocol.in_(sorted(SUPPORTED_PROTOCOLS)),
        or_(Agent.healthy.is_(None), Agent.healthy.is_(True)),
        # breaker.Circuit: open while now < open_until.
        or_(Agent.circuit_open_until.is_(None), Agent.circuit_open_until <= now),
        serves(job.category, dialect),
        Agent.skill_level >= job.skill_level,
    ]
    if job.tags:
        conds.append(_lists(Agent.tags, sorted(set(job.tags)), dialect))
    return and_(*conds)
