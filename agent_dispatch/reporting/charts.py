"""Inline SVG charts: no scripts, no fonts or images to fetch, readable in any browser.

Every data mark carries class "mark" and data-* attributes (series, x, value) and a <title>
tooltip, so a test (or a person with devtools) can check what was drawn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from html import escape

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
W, H = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 46


@dataclasses.dataclass(frozen=True, slots=True)
class Svg:
    markup: str
    marks: int  # data marks drawn (points, bars); 0 means the chart is empty


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    series: str
    value: float
    color: str


@dataclasses.dataclass(frozen=True, slots=True)
class HBar:
    label: str
    segments: tuple[Segment, ...]
    note: str = ""  # printed right of the bar


def color_of(names: Sequence[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _a(value: object) -> str:
    return escape(str(value), quote=True)


def _svg(body: list[str], height: int = H, label: str = "") -> str:
    return (
        f'<svg viewBox="0 0 {W} {height}" width="100%" role="img" aria-label="{_a(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _mark(shape: str, series: str, at: str, value: str, tip: str, **attrs: object) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{_a(v)}"' for k, v in attrs.items())
    return (
        f'<{shape} class="mark" data-series="{_a(series)}" data-x="{_a(at)}" '
        f'data-value="{_a(value)}" {extra}><title>{escape(tip)}</title></{shape}>'
    )


def _y_axis(y_max: float, fmt: Callable[[float], str], ticks: int = 4) -> list[str]:
    out = []
    for i in range(ticks + 1):
        v = y_max * i / ticks
        y = TOP + (H - TOP - BOTTOM) * (1 - i / ticks)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(fmt(v))}</text>"
        )
    return out


def _x_labels(labels: Sequence[str], xs: Sequence[float]) -> list[str]:
    step = -(-len(labels) // 8) or 1  # at most 8 labels, whatever the bucket count
    return [
        f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" class="tick" text-anchor="middle">'
        f"{escape(label)}</text>"
        for i, (label, x) in enumerate(zip(labels, xs, strict=True))
        if i % step == 0
    ]


def _xs(n: int) -> list[float]:
    inner = W - LEFT - RIGHT
    return [LEFT + inner * (i + 0.5) / n for i in range(n)]


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """Line segments between neighbouring points; a missing value breaks the line."""
    parts, prev = [], None
    for p in points:
        if p is not None and prev is not None:
            parts.append(f"M{prev[0]:.1f},{prev[1]:.1f} L{p[0]:.1f},{p[1]:.1f}")
        prev = p
    return " ".join(parts)


def line_chart(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    colors: dict[str, str],
    fmt: Callable[[float], str],
    y_max: float = 1.0,
) -> Svg:
    """One line per series over shared x buckets; None leaves a gap."""
    xs, plot_h = _xs(len(x_labels)), H - TOP - BOTTOM
    body, marks = _y_axis(y_max, fmt), 0
    for name, values in series.items():
        scale = 1 / y_max if y_max else 0.0
        coords = [
            None if v is None else (x, TOP + plot_h * (1 - v * scale))
            for x, v in zip(xs, values, strict=True)
        ]
        pts = [
            (c[0], c[1], lbl, v)
            for c, lbl, v in zip(coords, x_labels, values, strict=True)
            if c is not None and v is not None
        ]
        color = colors[name]
        body.append(f'<g class="series" data-series="{_a(name)}">')
        d = _path(coords)
        if d:
            body.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y, lbl, v in pts:
            body.append(
                _mark(
                    "circle",
                    name,
                    lbl,
                    f"{v:.6g}",
                    f"{name} {lbl}: {fmt(v)}",
                    cx=f"{x:.1f}",
                    cy=f"{y:.1f}",
                    r=3.5,
                    fill=color,
                )
            )
            marks += 1
        body.append("</g>")
    body += _x_labels(x_labels, xs)
    return Svg(_svg(body, label="line chart"), marks)


def stacked_columns(
    x_labels: Sequence[str], stacks: Mapping[str, Sequence[int]], colors: dict[str, str]
) -> Svg:
    """Columns per x bucket, stacked by series (e.g. job status)."""
    totals = [sum(col) for col in zip(*stacks.values(), strict=True)] or [0]
    top = max(-(-max(totals) // 4) * 4, 4)  # a multiple of 4: whole-number ticks
    xs, plot_h = _xs(len(x_labels)), H - TOP - BOTTOM
    width = max(2.0, (W - LEFT - RIGHT) / max(len(x_labels), 1) * 0.7)
    body, marks = _y_axis(float(top), lambda v: f"{v:.0f}"), 0
    base = [0.0] * len(x_labels)
    for name, values in stacks.items():
        body.append(f'<g class="series" data-series="{_a(name)}">')
        for i, v in enumerate(values):
            if v <= 0:
                continue
            h = plot_h * v / top
            y = TOP + plot_h - base[i] - h
            body.append(
                _mark(
                    "rect",
                    name,
                    x_labels[i],
                    str(v),
                    f"{x_labels[i]} {name}: {v}",
                    x=f"{xs[i] - width / 2:.1f}",
                    y=f"{y:.1f}",
                    width=f"{width:.1f}",
                    height=f"{h:.1f}",
                    fill=colors[name],
                )
            )
            base[i] += h
            marks += 1
        body.append("</g>")
    body += _x_labels(x_labels, xs)
    return Svg(_svg(body, label="stacked columns"), marks)


def hbar_chart(
    bars: Sequence[HBar], fmt: Callable[[float], str], x_max: float | None = None
) -> Svg:
    """Horizontal bars, one row per label, segments stacked left to right."""
    row, left, right = 26, 150, 200
    height = TOP + row * max(len(bars), 1) + 10
    top = x_max or max((sum(s.value for s in b.segments) for b in bars), default=0) or 1
    inner, body, marks = W - left - right, [], 0
    for i, bar in enumerate(bars):
        y, x = TOP + i * row, float(left)
        body.append(
            f'<text x="{left - 8}" y="{y + 15}" class="label" text-anchor="end">'
            f"{escape(bar.label)}</text>"
        )
        for seg in bar.segments:
            w = inner * seg.value / top
            if w <= 0:
                continue
            body.append(
                _mark(
                    "rect",
                    seg.series,
                    bar.label,
                    f"{seg.value:.6g}",
                    f"{bar.label} {seg.series}: {fmt(seg.value)}",
                    x=f"{x:.1f}",
                    y=y + 3,
                    width=f"{w:.1f}",
                    height=row - 8,
                    fill=seg.color,
                )
            )
            x += w
            marks += 1
        body.append(f'<text x="{x + 6:.1f}" y="{y + 15}" class="note">{escape(bar.note)}</text>')
    return Svg(_svg(body, height, label="bar chart"), marks)


def histogram(
    bins: Sequence[str], counts: Sequence[int], color: str, series: str, height: int = 120
) -> Svg:
    """A small histogram (one agent's latency distribution)."""
    n, top = len(bins), max(max(counts, default=0), 1)
    left, right, top_pad, bottom = 8, 8, 8, 28
    plot_h, step = height - top_pad - bottom, (W / 2 - left - right) / max(n, 1)
    body, marks = [], 0
    for i, (label, c) in enumerate(zip(bins, counts, strict=True)):
        x = left + i * step
        if c > 0:
            h = plot_h * c / top
            body.append(
                _mark(
                    "rect",
                    series,
                    label,
                    str(c),
                    f"{series} {label}: {c} calls",
                    x=f"{x + 1:.1f}",
                    y=f"{top_pad + plot_h - h:.1f}",
                    width=f"{step - 2:.1f}",
                    height=f"{h:.1f}",
                    fill=color,
                )
            )
            marks += 1
        if i % 2 == 0:
            body.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 12}" class="tick" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    svg = (
        f'<svg viewBox="0 0 {W // 2} {height}" width="100%" role="img" '
        f'aria-label="latency histogram" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )
    return Svg(svg, marks)
