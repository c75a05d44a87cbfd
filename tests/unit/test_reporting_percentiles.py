"""percentile_cont emulation (SQLite path) checked against numpy's linear percentiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, insert

from agent_dispatch.db.reporting_percentiles import (
    column_name,
    from_ranked,
    interpolate,
    ranked_statement,
    ranks,
)

QS = (0.5, 0.9, 0.99)


def test_column_names() -> None:
    assert column_name("latency", 0.5) == "latency_p50"
    assert column_name("latency", 0.99) == "latency_p99"
    assert column_name("e2e", 0.999) == "e2e_p99_9"


def test_ranks_around_the_position() -> None:
    assert ranks(1, 0.9) == (1, 2, 0.0)
    assert ranks(5, 0.5) == (3, 4, 0.0)
    lo, hi, frac = ranks(4, 0.9)  # position 2.7
    assert (lo, hi) == (3, 4)
    assert frac == pytest.approx(0.7, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 101, 1000])
def test_interpolation_matches_numpy(n: int) -> None:
    values = np.sort(np.random.default_rng(n).lognormal(7, 1, n))
    for q in (*QS, 0.0, 1.0, 0.25):
        lo, hi, _ = ranks(n, q)
        only_needed = {r: float(values[r - 1]) for r in (lo, hi) if r <= n}
        assert interpolate(only_needed, n, q) == pytest.approx(
            float(np.percentile(values, q * 100)), rel=1e-12
        )


def test_hand_computed_values() -> None:
    # [1000, 1500, 2000]: p90 at position 1.8 -> 1500 + 0.8 * 500
    by_rank = {1: 1000.0, 2: 1500.0, 3: 2000.0}
    assert interpolate(by_rank, 3, 0.5) == 1500.0
    assert interpolate(by_rank, 3, 0.9) == pytest.approx(1900.0, abs=1e-9)
    assert interpolate(by_rank, 3, 0.99) == pytest.approx(1990.0, abs=1e-9)


def _table() -> tuple[Table, MetaData]:
    md = MetaData()
    t = Table("t", md, Column("id", Integer, primary_key=True), Column("g", String),
              Column("h", Integer), Column("v", Float))  # fmt: skip
    return t, md


def test_ranked_statement_on_sqlite_matches_numpy_per_group() -> None:
    rng = np.random.default_rng(7)
    t, md = _table()
    engine = create_engine("sqlite://")
    md.create_all(engine)
    rows: list[dict[str, object]] = []
    sizes = {("a", 1): 1, ("a", 2): 2, ("b", 1): 57, ("c", 3): 400}
    for (g, h), n in sizes.items():
        vals = rng.integers(1, 50, n).astype(float)  # many ties
        rows += [{"g": g, "h": h, "v": float(v)} for v in vals]
        rows.append({"g": g, "h": h, "v": None})  # NULLs are ignored, as percentile_cont does
    with engine.begin() as conn:
        conn.execute(insert(t), rows)
        result = conn.execute(ranked_statement([t.c.g, t.c.h], t.c.v, QS))
        ranked = pd.DataFrame(result.all(), columns=list(result.keys()))
    assert len(ranked) <= 2 * len(QS) * len(sizes)  # a few rows per group, never the values
    got = from_ranked(ranked, ["g", "h"], QS, "v").set_index(["g", "h"])
    frame = pd.DataFrame(rows).dropna()
    for (g, h), n in sizes.items():
        values = frame[(frame.g == g) & (frame.h == h)]["v"].to_numpy()
        assert len(values) == n
        for q in QS:
            expected = float(np.percentile(values, q * 100))
            assert got.loc[(g, h), column_name("v", q)] == pytest.approx(expected, rel=1e-12)


def test_ranked_statement_without_groups() -> None:
    t, md = _table()
    engine = create_engine("sqlite://")
    md.create_all(engine)
    values = [float(v) for v in range(1, 11)]
    with engine.begin() as conn:
        conn.execute(insert(t), [{"g": "x", "h": 0, "v": v} for v in values])
        result = conn.execute(ranked_statement([], t.c.v, QS))
        ranked = pd.DataFrame(result.all(), columns=list(result.keys()))
    got = from_ranked(ranked, [], QS, "v")
    assert list(got.columns) == ["v_p50", "v_p90", "v_p99"]
    assert got.iloc[0].tolist() == pytest.approx([5.5, 9.1, 9.91], abs=1e-9)


def test_no_values_gives_no_rows() -> None:
    got = from_ranked(pd.DataFrame(columns=["g", "v", "rn", "n"]), ["g"], QS, "v")
    assert got.empty
    assert list(got.columns) == ["g", "v_p50", "v_p90", "v_p99"]


def test_grouped_percentiles_match_percentile_cont() -> None:
    """reporting.fine.percentiles (numpy, every group at once) == interpolate() per group."""
    from agent_dispatch.reporting.fine import percentiles

    rng = np.random.default_rng(7)
    n_groups = 70_000  # more than 16 bits of group ids: two radix passes
    group = rng.integers(0, n_groups, 200_000).astype(np.int64)
    values = np.round(rng.random(200_000) * 1000, 1)  # with ties
    qs = (0.5, 0.9, 0.99)
    counts, sums, pcts = percentiles(group, values, n_groups, qs)
    for g in [*rng.integers(0, n_groups, 50), int(np.argmax(counts))]:
        mine = np.sort(values[group == g])
        assert counts[g] == len(mine) and sums[g] == pytest.approx(mine.sum())
        for q, column in zip(qs, pcts, strict=True):
            if not len(mine):
                assert np.isnan(column[g])
                continue
            by_rank = {i + 1: float(v) for i, v in enumerate(mine)}
            assert column[g] == interpolate(by_rank, len(mine), q)
    empty = percentiles(np.zeros(0, np.int64), np.zeros(0), 2, qs)
    assert empty[0].tolist() == [0, 0] and np.isnan(empty[2][0]).all()
