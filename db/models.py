"""Typed SQLAlchemy 2 models: agents, jobs, distribution records and per-agent rows."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from agent_dispatch.db.types import JSONDoc, UTCDateTime, utcnow
from agent_dispatch.domain.statuses import (
    AgentRunStatus,
    DistributionStatus,
    FailureKind,
    JobStatus,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: Any) -> str:
    return f"{column} IN (" + ", ".join(f"'{v.value}'" for v in values) + ")"


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint("skill_level BETWEEN 1 AND 5", name="skill_level"),
        CheckConstraint("max_concurrency >= 1", name="max_concurrency"),
        CheckConstraint("protocol IN ('http-json', 'a2a')", name="protocol"),
        # The matching prefilter's containment tests (db/agent_repository.py); PostgreSQL only.
        Index(
            "ix_agents_categories_gin",
            "categories",
            postgresql_using="gin",
            postgresql_ops={"categories": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_agents_tags_gin",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    protocol: Mapped[str] = mapped_column(String(20), default="http-json")
    categories: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    tags: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    skill_level: Mapped[int] = mapped_column(Integer, default=1)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Name of a secret in settings (AGENT_TOKENS), never the token itself.
    token_ref: Mapped[str | None] = mapped_column(String(100))
    healthy: Mapped[bool | None] = mapped_column(Boolean)
    health_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    health_detail: Mapped[str | None] = mapped_column(Text)
    # Statistics used by ranking (refreshed after each job and by the analytics flow).
    runs: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    timeouts: Mapped[int] = mapped_column(Integer, default=0)
    wins: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    reputation: Mapped[float] = mapped_column(Float, default=0.5)
    success_rate: Mapped[float | None] = mapped_column(Float)
    avg_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Circuit breaker: consecutive failures and until when calls are refused.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    circuit_open_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Open (ASSIGNED/WORKING) calls: kept by database triggers on job_distribution_agents
    # (migration 0008), never written by the application.
    in_flight: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JobStatus), name="status"),
        CheckConstraint("skill_level BETWEEN 1 AND 5", name="skill_level"),
        CheckConstraint("max_agents IS NULL OR max_agents BETWEEN 1 AND 10", name="max_agents"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # Only a workflow's step job is ever SKIPPED, and a step is always named.
        CheckConstraint("status <> 'SKIPPED' OR parent_job_id IS NOT NULL", name="skipped_step"),
        CheckConstraint("(parent_job_id IS NULL) = (step_id IS NULL)", name="step_named"),
        UniqueConstraint("parent_job_id", "step_id", "step_try", name="uq_jobs_step_try"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    queue_task_id: Mapped[str] = mapped_column(String(128), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(100), index=True)
    tags: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    skill_level: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    max_agents: Mapped[int | None] = mapped_column(Integer)
    timeout_ms: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The task's resultStrategy as the queue sent it ({"type": ..., "quorum": k}), or NULL.
    result_strategy: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.OPEN.value)
    selected_agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    result: Mapped[Any] = mapped_column(JSONDoc, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    match_summary: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Lease with fencing: every write for a taken job must present lease_token.
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    queue_status: Mapped[str | None] = mapped_column(String(20))  # last status the queue accepted
    queue_created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    distributed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Workflows: a parent names its workflow; a step job links to its parent (never queued).
    workflow: Mapped[str | None] = mapped_column(String(100))
    parent_job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[str | None] = mapped_column(String(40))
    step_try: Mapped[int | None] = mapped_column(Integer)
    # The agent pool version at which intake found that no agent could ever serve this job
    # (capacity and circuits aside); while it is current, intake leaves the job waiting.
    unserved_version: Mapped[int | None] = mapped_column(BigInteger)

    distributions: Mapped[list[JobDistributionRecord]] = relationship(
        back_populates="job", order_by="JobDistributionRecord.attempt"
    )


class AgentPool(Base):
    """One row: bumped by triggers on `agents` when a column an unservable verdict reads
    changes (migration 0009): who exists, active, protocol, healthy, categories, tags, skill."""

    __tablename__ = "agent_pool"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


def on_queue() -> Any:
    """Jobs that are queue tasks (not workflow steps): the only ones the queue hears about."""
    return Job.parent_job_id.is_(None)


class JobDistributionRecord(Base):
    """One dispatch attempt of a job: the agents chosen and how it ended."""

    __tablename__ = "job_distributions"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt", name="uq_job_distributions_job_attempt"),
        CheckConstraint(_in("status", DistributionStatus), name="status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=DistributionStatus.RUNNING.value)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    # The chosen agents, the next few and a few excluded ones (domain.matching.NEXT_FEW),
    # and how many agents each rule excluded: bounded whatever the fleet's size.
    decisions: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    exclusions: Mapped[dict[str, int] | None] = mapped_column(JSONDoc)
    winner_agent_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_result_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    job: Mapped[Job] = relationship(back_populates="distributions")
    agents: Mapped[list[JobDistributionAgent]] = relationship(
        back_populates="distribution", order_by="JobDistributionAgent.rank"
    )


class JobDistributionAgent(Base):
    """One agent's part in one distribution."""

    __tablename__ = "job_distribution_agents"
    __table_args__ = (
        UniqueConstraint("distribution_id", "agent_id", name="uq_distribution_agent"),
        CheckConstraint(_in("status", AgentRunStatus), name="status"),
        CheckConstraint(
            "failure_kind IS NULL OR " + _in("failure_kind", FailureKind), name="failure_kind"
        ),
        Index("ix_jda_agent_status", "agent_id", "status"),
        Index("ix_jda_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    distribution_id: Mapped[str] = mapped_column(
        ForeignKey("job_distributions.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    agent_name: Mapped[str] = mapped_column(String(100))  # kept when the agent is removed
    rank: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default=AgentRunStatus.ASSIGNED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str] = mapped_column(String(100))
    remote_task_id: Mapped[str | None] = mapped_column(String(200))
    task_run_id: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    result: Mapped[Any] = mapped_column(JSONDoc, nullable=True)
    score: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    failure_kind: Mapped[str | None] = mapped_column(String(20))
    won: Mapped[bool] = mapped_column(Boolean, default=False)

    distribution: Mapped[JobDistributionRecord] = relationship(back_populates="agents")


class AgentCategoryStats(Base):
    """What ranking has learned about one agent in one category: decayed evidence sums.

    Updated in the same transaction that finishes a job (under the agent's row lock), read
    by planning and by the race (hedge delays); see domain.posterior.Evidence.
    """

    __tablename__ = "agent_category_stats"

    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    successes: Mapped[float] = mapped_column(Float, default=0.0)
    failures: Mapped[float] = mapped_column(Float, default=0.0)
    censored: Mapped[float] = mapped_column(Float, default=0.0)
    lat_n: Mapped[float] = mapped_column(Float, default=0.0)
    log_sum: Mapped[float] = mapped_column(Float, default=0.0)
    log_sq: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class QueueRejection(Base):
    """A queue item refused at intake (bad shape), kept so nothing vanishes silently."""

    __tablename__ = "queue_rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue_task_id: Mapped[str | None] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(Text)
    reported: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChangeLogEntry(Base):
    """One job or agent status change, written in the transaction that made it (the live
    feed's source of truth: `GET /api/ws?after=<id>` replays from here). Bounded: old rows
    are pruned (db/change_log.py). No foreign keys: an entry outlives a removed agent."""

    __tablename__ = "change_log"
    __table_args__ = (CheckConstraint("kind IN ('job', 'agent')", name="kind"),)

    # BIGINT on PostgreSQL; SQLite's rowid alias must be spelled INTEGER to autoincrement.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(10))
    job_id: Mapped[str] = mapped_column(String(36))
    queue_task_id: Mapped[str] = mapped_column(String(128))
    agent_id: Mapped[str | None] = mapped_column(String(36))
    agent_name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
