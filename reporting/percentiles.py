"""Exact per-group percentiles from a stream sorted by group, in bounded memory.

Used where the database has no percentile_cont (SQLite). Linear interpolation between the
closest ranks, the definition PostgreSQL's percentile_cont and numpy's default both use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd


def column_name(prefix: str, q: float) -> str:
    """`latency`, 0.9 -> `latency_p90`; 0.999 -> `latency_p99_9`."""
    pct = f"{q * 100:.10g}".replace(".", "_")
    return f"{prefix}_p{pct}"


def _finish(
    frame: pd.DataFrame, keys: list[str], value: str, qs: Sequence[float], prefix: str
) -> pd.DataFrame:
    rows = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        values = group[value].to_numpy(dtype=np.float64)
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        for q, v in zip(qs, np.percentile(values, [q * 100 for q in qs]), strict=True):
            row[column_name(prefix, q)] = float(v)
        rows.append(row)
    return pd.DataFrame(rows)


def grouped_percentiles(
    chunks: Iterable[pd.DataFrame],
    keys: list[str],
    value: str,
    qs: Sequence[float],
    prefix: str,
) -> pd.DataFrame:
    """One row per group: keys plus `{prefix}_pNN` columns.

    `chunks` must be sorted by `keys` across the whole stream (ORDER BY in SQL). Memory holds one
    chunk plus the group still open at its end, never the whole stream.
    """
    out: list[pd.DataFrame] = []
    carry: pd.DataFrame | None = None
    for chunk in chunks:
        if chunk.empty:
            continue
        frame = chunk if carry is None else pd.concat([carry, chunk], ignore_index=True)
        last = frame.iloc[-1][keys]
        open_group = np.logical_and.reduce([frame[k].to_numpy() == last[k] for k in keys])
        carry = frame.loc[open_group].reset_index(drop=True)
        done = frame.loc[~open_group]
        if not done.empty:
            out.append(_finish(done, keys, value, qs, prefix))
    if carry is not None and not carry.empty:
        out.append(_finish(carry, keys, value, qs, prefix))
    columns = [*keys, *(column_name(prefix, q) for q in qs)]
    if not out:
        return pd.DataFrame(columns=columns)
    return pd.concat(out, ignore_index=True)[columns]
