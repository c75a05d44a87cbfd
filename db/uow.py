"""Unit of work: one transaction, repositories bound to it."""

from __future__ import annotations

from types import TracebackType

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
