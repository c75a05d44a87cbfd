"""Workflow figures from step and run rows (pure pandas), and where they show."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from agent_dispatch.db.workflow_stats import RUN_COLUMNS, STEP_COLUMNS
from agent_dispatch.reporting.format import text_lines
from agent_dispatch.reporting.tables import html_section
from agent_dispatch.reporting.workflows import WorkflowFigures, figures

T = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)


def at(seconds: float | None) -> pd.Timestamp:
    return pd.NaT if seconds is None else pd.Timestamp(T + dt.timedelta(seconds=seconds))


def steps(*rows: tuple[str, str, str, float | None, float | None]) -> pd.DataFrame:
    return pd.DataFrame([(w, s, st, at(a), at(b)) for w, s, st, a, b in rows], columns=STEP_COLUMNS)


def runs(*rows: tuple[str, int, str, float, float | None]) -> pd.DataFrame:
    return pd.DataFrame([(w, n, st, at(a), at(b)) for w, n, st, a, b in rows], columns=RUN_COLUMNS)


def test_no_rows_no_figures_and_nothing_printed() -> None:
    found = figures(steps(), runs())
    assert found == WorkflowFigures()
    assert text_lines(found.document()) == []
    assert "no workflow run or step ended in this window" in html_section(found.document())


def test_running_and_resumed_runs_and_a_skipped_step() -> None:
    found = figures(
        steps(("w", "a", "COMPLETED", 0, 2), ("w", "b", "SKIPPED", None, 3),
              ("w", "a", "EXPIRED", 10, 20), ("w", "c", "IN_PROGRESS", 5, None)),
        runs(("w", 1, "COMPLETED", 0, 4), ("w", 3, "IN_PROGRESS", 10, None),
             ("w", 1, "CANCELLED", 20, 21)),
    )  # fmt: skip
    (run,) = found.runs
    assert (run.runs, run.completed, run.failed, run.running, run.resumed) == (3, 1, 1, 1, 1)
    assert (run.p50_s, run.p95_s, run.max_s) == (4.0, 4.0, 4.0)
    by_id = {s.step_id: s for s in found.steps}
    assert (by_id["a"].tries, by_id["a"].success_rate, by_id["a"].p50_ms) == (2, 0.5, 2000.0)
    assert (by_id["b"].skipped, by_id["b"].success_rate, by_id["b"].p50_ms) == (1, None, None)
    assert (by_id["c"].tries, by_id["c"].completed, by_id["c"].failed) == (1, 0, 0)
    doc = found.document()
    assert doc["runs"][0]["success_rate"] == pytest.approx(0.5)
    run_row = "\n".join(text_lines(doc)).splitlines()[4]  # blank, title, header, rule, row
    assert run_row.split() == [
        "w",
        "3",
        "1",
        "1",
        "50.0%",
        "4000",
        "ms",
        "4000",
        "ms",
        "4000",
        "ms",
    ]
