"""The one place that reads the environment."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path.home() / ".agent-dispatch" / "agent-dispatch.db"


def normalize_database_url(url: str) -> str:
    """Accept the plain `postgresql://` form users write and pick the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


PolicyName = Literal["all-at-once", "hedge", "single"]
StrategyName = Literal["first", "best-score", "quorum"]


class CategoryRule(BaseModel):
    """Per-category overrides of the dispatch policy and result strategy (unset: global)."""

    policy: PolicyName | None = None
    hedge_delay_ms: float | None = Field(default=None, ge=0)
    strategy: StrategyName | None = None
    quorum: int | None = Field(default=None, ge=2, le=10)


class Settings(BaseSettings):
    """agent-dispatch settings; names are the environment variables users already set."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    database_url: str = Field(default="", description="Empty: SQLite at ~/.agent-dispatch")
    remote_queue_url: str = "http://127.0.0.1:8700"
    remote_queue_token: SecretStr = SecretStr("")
    # The name of a Prefect Secret block holding the queue token; when set, it wins over
    # REMOTE_QUEUE_TOKEN and is read at run time (a token rotated in the UI is picked up).
    remote_queue_token_secret: str = ""
    secret_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long a token read from a Secret block is reused"
    )
    default_agent_timeout: int = Field(default=30_000, ge=100, description="Per-agent ms")
    max_agents_per_job: int = Field(default=3, ge=1, le=10)
    execution_retry_count: int = Field(default=2, ge=0, le=10)

    job_lease_seconds: int = Field(default=300, ge=5)
    job_max_attempts: int = Field(default=3, ge=1)
    job_concurrency: int = Field(default=20, ge=1, description="Jobs dispatched at once per run")
    # traced: every agent call a Prefect task run of its own, the job's steps plain calls;
    # steps: every step a task run too; lean: a job's steps and calls are plain coroutines
    # inside one `dispatch-job` task run per job (tasks/job_steps.py).
    dispatch_mode: Literal["traced", "steps", "lean"] = "traced"
    queue_page_size: int = Field(default=50, ge=1, le=500)
    queue_timeout_seconds: float = Field(default=10.0, gt=0)
    agent_max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    agent_allow_private_networks: bool = False
    agent_health_timeout_seconds: float = Field(default=3.0, gt=0)
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_reset_seconds: float = Field(default=60.0, gt=0)
    capacity_wait_seconds: float = Field(
        default=60.0, ge=0, description="How long a job waits in a run for a busy agent"
    )
    lease_check_seconds: float = Field(default=1.0, gt=0, description="Cancel/lease poll")
    # Per-agent bearer tokens by reference name, e.g. AGENT_TOKENS='{"acme": "s3cret"}'. An
    # agent's token_ref `secret-block:NAME` names a Prefect Secret block instead.
    agent_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    worker_name: str = Field(default="", description="Lease owner; empty: host:pid")

    # Learned ranking (Thompson sampling over per-(agent, category) evidence).
    ranking: Literal["learned", "classic"] = "learned"
    ranking_explore: bool = Field(default=True, description="False: posterior mean, no sampling")
    ranking_half_life_seconds: float = Field(default=3600.0, gt=0)
    ranking_failure_cost_ms: int | None = Field(
        default=None, ge=0, description="What a failed call costs in time; None: the agent timeout"
    )
    ranking_seed: int | None = Field(default=None, description="Fixed seed: repeatable picks")
    # A bound on the agents a plan scores (kube-scheduler's percentageOfNodesToScore): past
    # it, the admitted agents with room and the best reputation are scored, the rest counted
    # as "not scored". None: max(20, 10 x the agents the job wants).
    agents_scored_per_job: int | None = Field(
        default=None, ge=1, description="Agents a plan scores at most; None: max(20, 10 x wanted)"
    )
    # How agents are started and how the result is chosen (per-category rules override).
    dispatch_policy: PolicyName = "all-at-once"
    hedge_delay_ms: float | None = Field(
        default=None, ge=0, description="Fixed hedge delay; None: the agent's own p95"
    )
    hedge_quantile: float = Field(default=0.95, gt=0, lt=1)
    hedge_fallback_delay_ms: float = Field(default=2000.0, ge=0, description="p95 unknown yet")
    # The simulation's recommended hedge (docs/dispatch-policies.md); 0 hedges on time only.
    hedge_min_success: float | None = Field(
        default=0.94, ge=0, lt=1, description="Also start agents until P(one succeeds) >= this"
    )
    result_strategy: StrategyName = "first"
    quorum_size: int = Field(default=2, ge=2, le=10)
    quorum_max_agents: int = Field(default=5, ge=2, le=10, description="Escalation limit")
    # e.g. DISPATCH_RULES='{"legal": {"policy": "hedge", "strategy": "quorum", "quorum": 3}}'
    dispatch_rules: dict[str, CategoryRule] = Field(default_factory=dict)
    # The HTTP API (`agent-dispatch serve`). Without API_TOKEN the API is open, and serve
    # refuses to listen anywhere but loopback.
    api_token: SecretStr = SecretStr("")
    api_public_read: bool = Field(default=False, description="GETs need no token")
    # The change log behind the live feed: rows kept, and how often SQLite is polled.
    change_log_keep: int = Field(default=100_000, ge=100, description="Newest rows kept")
    change_log_poll_seconds: float = Field(default=0.25, gt=0, le=5)

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_database_url(value.strip())

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{DEFAULT_SQLITE_PATH}"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
