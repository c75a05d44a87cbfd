"""Unit of work: one transaction, repositories bound to it."""

from __future__ import annotations

from types import TracebackType

from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from agent_dispatch.db.agent_repository import AgentRepository
from agent_dispatch.db.distribution_repository import DistributionRepository
from agent_dispatch.db.job_repository import JobRepository
from agent_dispatch.db.sweep_repository import SweepRepository
from agent_dispatch.db.workflow_repository import WorkflowRepository


class UnitOfWork:
    """`with UnitOfWork(factory) as uow: ...; uow.commit()` — rolls back unless committed."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        self.agents = AgentRepository(self.session)
        self.jobs = JobRepository(self.session)
        self.distributions = DistributionRepository(self.session)
        self.sweep = SweepRepository(self.session)
        self.workflows = WorkflowRepository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back anything uncommitted and detaches objects without expiring them,
        # so values read inside the block stay readable after it.
        self.session.close()

    def commit(self) -> None:
        self.session.commit()


def must_retry(exc: BaseException) -> bool:
    """PostgreSQL chose this transaction as a deadlock's victim (or a serialization failure):
    it was rolled back whole and may simply run again. PostgreSQL's manual asks clients to do
    exactly that; two transactions taking the same agents' rows in different orders (a row
    lock here, a trigger's update there) is enough to cause one now and then."""
    return isinstance(exc, DBAPIError) and isinstance(
        exc.orig, pg_errors.DeadlockDetected | pg_errors.SerializationFailure
    )
