"""How numbers read in the terminal, the artifacts and the dashboard: one spelling each."""

from __future__ import annotations


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.0f} ms"


def table(rows: list[list[str]], headers: list[str]) -> str:
    """Left-aligned columns under a dashed rule (the CLI's tables)."""
    cells = [headers, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
