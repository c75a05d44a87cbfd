"""Persistence: SQLAlchemy 2 models, Alembic migrations, repositories and the unit of work.

Every SQL statement of agent-dispatch lives in this package. Importing it registers every
table on `models.Base.metadata` (reporting and workflow tables live in their own modules).
"""

from agent_dispatch.db import models, reporting_models, workflow_models

__all__ = ["models", "reporting_models", "workflow_models"]
