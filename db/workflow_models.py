"""Workflow tables: registered definitions, and one row per workflow run (its snapshot).

A run keeps the definition it started with, so replacing a workflow never changes a run that
is under way or resuming after a crash. Steps themselves are job rows (`jobs.parent_job_id`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agent_dispatch.db.models import Base
from agent_dispatch.db.types import JSONDoc, UTCDateTime, utcnow


class Workflow(Base):
    __tablename__ = "workflows"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDoc)  # checked, camelCase
    source: Mapped[str] = mapped_column(Text)  # the file as given, for `workflows show`
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WorkflowRun(Base):
    """A parent job run as a workflow: the definition it runs and how often it was started."""

    __tablename__ = "workflow_runs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(100), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    starts: Mapped[int] = mapped_column(Integer, default=1)  # >1: resumed after a lost worker
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
