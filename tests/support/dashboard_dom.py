"""Read a dashboard's DOM (as written, or as Chromium rendered it) into per-chart facts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Chart:
    id: str
    points: int  # the figure's data-points attribute
    series: list[str]
    marks: dict[str, int] = field(default_factory=dict)  # tag -> elements with class "mark"
    shapes: dict[str, int] = field(default_factory=dict)  # tag -> all circle/rect/path
    text: list[str] = field(default_factory=list)
    mark_series: set[str] = field(default_factory=set)


class DashboardDom(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.charts: dict[str, Chart] = {}
        self.external: list[str] = []  # src/href values that would need the network
        self.tags: dict[str, int] = {}
        self.kpis: dict[str, list[str]] = {}  # kpi id -> [label, value]
        self.leaderboard: dict[str, list[str]] = {}  # agent -> cell texts
        self._text_sink: list[str] | None = None
        self._kpi_sink: list[str] | None = None
        self._current: Chart | None = None
        self._depth = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for key in ("src", "href"):
            if key in a and not a[key].startswith("#"):
                self.external.append(a[key])
        if tag == "div" and a.get("id", "").startswith("kpi-"):
            self._text_sink = self._kpi_sink = self.kpis.setdefault(a["id"][4:], [])
        if tag == "tr" and "data-agent" in a:
            self._text_sink = self.leaderboard.setdefault(a["data-agent"], [])
        if tag == "figure" and "chart" in a.get("class", "").split():
            self._current = Chart(a["id"], int(a["data-points"]), json.loads(a["data-series"]))
            self.charts[a["id"]] = self._current
            self._depth = 0
        if self._current is None:
            return
        if tag == "figure":
            self._depth += 1
        if tag in ("circle", "rect", "path"):
            c = self._current
            c.shapes[tag] = c.shapes.get(tag, 0) + 1
            if "mark" in a.get("class", "").split():
                c.marks[tag] = c.marks.get(tag, 0) + 1
                c.mark_series.add(a.get("data-series", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._text_sink = None
        if self._current is not None and tag == "figure":
            self._depth -= 1
            if self._depth == 0:
                self._current = None

    def handle_data(self, data: str) -> None:
        if self._text_sink is not None and data.strip():
            self._text_sink.append(data.strip())
            if self._text_sink is self._kpi_sink and len(self._text_sink) == 2:
                self._text_sink = None  # a KPI card is its label and its value
        if self._current is not None and data.strip():
            self._current.text.append(data.strip())
