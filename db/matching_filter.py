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
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import Executable

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
        Agent.active.is_(True),
        Agent.protocol.in_(sorted(SUPPORTED_PROTOCOLS)),
        or_(Agent.healthy.is_(None), Agent.healthy.is_(True)),
        # breaker.Circuit: open while now < open_until.
        or_(
            Agent.circuit_open_until.is_(None),
            Agent.circuit_open_until <= bindparam("now", type_=UTCDateTime()),
        ),
        serves(dialect),
        Agent.skill_level >= bindparam("skill", type_=Integer()),
    ]
    if tags:
        conds.append(_contains(Agent.tags, "tags", dialect))
    return and_(*conds)


EVIDENCE_COLUMNS = (
    AgentCategoryStats.successes,
    AgentCategoryStats.failures,
    AgentCategoryStats.censored,
    AgentCategoryStats.lat_n,
    AgentCategoryStats.log_sum,
    AgentCategoryStats.log_sq,
    AgentCategoryStats.updated_at,
)


@functools.cache
def pool_statement(dialect: str, tags: bool) -> Executable:
    """Built once per shape (statement caching does the rest): the admitted agents with what
    ranking learned about each in the job's category (outer join: nothing yet is NULL)."""
    joined = and_(
        AgentCategoryStats.agent_id == Agent.id,
        AgentCategoryStats.category == bindparam("category", type_=String()),
    )
    return (
        select(*PROFILE_COLUMNS, *EVIDENCE_COLUMNS)
        .outerjoin(AgentCategoryStats, joined)
        .where(_record_rules(dialect, tags))
    )


def pool_params(job: JobSpec, now: dt.datetime) -> dict[str, Any]:
    return {
        "categories": [job.category],
        "category": job.category,
        "tags": sorted(set(job.tags)),
        "skill": job.skill_level,
        "now": now,
    }


def evidence_from_row(row: Any) -> Evidence | None:
    successes, failures, censored, lat_n, log_sum, log_sq, at = row[len(PROFILE_COLUMNS) :]
    if successes is None:
        return None
    when = at.timestamp() if at else None
    return Evidence(successes, failures, censored, lat_n, log_sum, log_sq, when)
