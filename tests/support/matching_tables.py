"""Databases of both dialects for the matching tests, and a varied fleet to match against."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from agent_dispatch.db.engine import make_engine, make_session_factory
from agent_dispatch.db.migrate import upgrade
from agent_dispatch.db.models import Agent
from agent_dispatch.db.uow import UnitOfWork
from agent_dispatch.domain.model import JobSpec

# Near-misses on purpose: case, spaces, quotes, unicode, a prefix of another value.
CATEGORIES = ["text", "Text", "code", "co", "data science", 'say "hi"', "übersetzen", "legal"]
TAGS = ["en", "EN", "de", "python", "py", "sql", "it's", "ünï"]


@contextmanager
def sqlite_sessions(tmp: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp / 'matching.sqlite'}")
    upgrade(engine)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@contextmanager
def pg_sessions(url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def fleet(rng: random.Random, n: int, now: dt.datetime) -> list[dict[str, Any]]:
    """Agents covering every rule's both sides and its boundaries (skill, circuit time)."""
    circuit_until = [None, None, now - dt.timedelta(seconds=1), now, now + dt.timedelta(hours=1)]
    return [
        {
            "name": f"agent-{i:04d}",
            "url": f"http://127.0.0.1:9/agents/{i}",
            "protocol": rng.choice(["http-json", "a2a"]),
            "categories": rng.sample(CATEGORIES, rng.randint(0, 3)),
            "tags": rng.sample(TAGS, rng.randint(0, 4)),
            "skill_level": rng.randint(1, 5),
            "max_concurrency": rng.randint(1, 3),
            "active": rng.random() > 0.15,
            "healthy": rng.choice([None, True, True, False]),
            "consecutive_failures": rng.randint(0, 6),
            "circuit_open_until": rng.choice(circuit_until),
        }
        for i in range(n)
    ]


def jobs(rng: random.Random, n: int) -> list[JobSpec]:
    specs = [
        JobSpec(
            queue_task_id=f"q-{i}",
            title="t",
            category=rng.choice([*CATEGORIES, "nobody-serves-this"]),
            tags=tuple(rng.sample(TAGS, rng.choice([0, 0, 1, 1, 2, 3]))),
            skill_level=rng.randint(1, 5),
        )
        for i in range(n)
    ]
    # A repeated tag asks for that tag once.
    return [*specs, JobSpec(queue_task_id="q-dup", title="t", category="text", tags=("en", "en"))]


def seed(factory: sessionmaker[Session], agents: list[dict[str, Any]]) -> None:
    with UnitOfWork(factory) as uow:
        uow.session.add_all(Agent(**a) for a in agents)
        uow.commit()
