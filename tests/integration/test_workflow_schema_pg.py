"""The database enforces the step rules too (PostgreSQL: CHECKs and the transition guard)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from agent_dispatch.settings import normalize_database_url

pytestmark = [pytest.mark.postgres]

INSERT = """INSERT INTO jobs (id, queue_task_id, title, description, category, tags, skill_level,
    payload, status, attempts, created_at, updated_at, parent_job_id, step_id, step_try)
    VALUES (:id, :id, 't', '', 'c', '[]', 1, '{}', :status, 0, now(), now(), :parent, :step, 1)"""


def test_only_a_step_may_be_skipped_or_fail_before_any_agent_worked(database_url: str) -> None:
    engine = create_engine(normalize_database_url(database_url))
    with engine.begin() as conn:
        conn.execute(text(INSERT), {"id": "p", "status": "OPEN", "parent": None, "step": None})
        conn.execute(text(INSERT), {"id": "s1", "status": "OPEN", "parent": "p", "step": "a"})
        conn.execute(text(INSERT), {"id": "s2", "status": "SKIPPED", "parent": "p", "step": "b"})
        conn.execute(text("UPDATE jobs SET status = 'FAILED' WHERE id = 's1'"))
    refused = pytest.raises(IntegrityError, match="illegal job transition OPEN -> FAILED")
    with refused, engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'FAILED' WHERE id = 'p'"))
    with pytest.raises(IntegrityError, match="ck_jobs_skipped_step"), engine.begin() as conn:
        conn.execute(text(INSERT), {"id": "q", "status": "SKIPPED", "parent": None, "step": None})
    with pytest.raises(IntegrityError, match="ck_jobs_step_named"), engine.begin() as conn:
        conn.execute(text(INSERT), {"id": "r", "status": "OPEN", "parent": "p", "step": None})
    engine.dispose()
