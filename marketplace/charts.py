"""Server-rendered charts: the geometry of a stacked bar chart, for an SVG template to draw
(``templates/charts/stacked_bars.html``). No JavaScript, no external assets; the template gives it a
``<title>`` and ``<desc>``, and pages put the same numbers in a table beside it.

Imports no app: any page (the portal, the admin) can use it.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    color: str  # a fill colour with at least 3:1 contrast against white


@dataclass(frozen=True)
class Segment:
    series: Series
    value: int
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    title: str  # the hover text: the bar's label and its values
    segments: list[Segment]


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class StackedBarChart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    series: list[Series]
    x_title: str
    y_title: str

    @property
    def plot_width(self) -> int:
        return self.right - self.left

    @property
    def plot_height(self) -> int:
        return self.bottom - self.top

    @property
    def y_title_y(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def x_title_x(self) -> float:
        return (self.left + self.right) / 2


def nice_step(maximum: float, ticks: int = 4) -> int:
    """A round step (1, 2 or 5 times a power of ten) that covers ``maximum`` in about ``ticks`` steps."""
    if maximum <= ticks:
        return 1
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return int(factor * magnitude)
    return int(10 * magnitude)  # pragma: no cover - the loop always returns


def compact_number(value: int) -> str:
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            shown = f"{value / size:.1f}".removesuffix(".0")
            return f"{shown}{suffix}"
    return str(value)


def stacked_bar_chart(
    *,
    points: Sequence[tuple[str, Sequence[int]]],
    series: Sequence[Series],
    x_labels: dict[int, str],
    x_title: str,
    y_title: str,
    width: int = 760,
    height: int = 280,
    empty: str = "no requests",
) -> StackedBarChart:
    """``points``: one ``(label, values)`` per bar, ``values`` in the order of ``series``, stacked
    bottom up. ``x_labels``: the axis labels, by bar index (label every few bars, not all).
    ``empty``: what a bar with no values says when hovered."""
    left, top, right, bottom = 64, 16, width - 12, height - 48
    peak = max((sum(values) for _, values in points), default=0)
    step = nice_step(peak)
    ceiling = max(step, step * math.ceil(peak / step))
    scale = (bottom - top) / ceiling
    slot = (right - left) / max(1, len(points))
    gap = min(2.0, slot * 0.2)
    bars = []
    for index, (label, values) in enumerate(points):
        y = float(bottom)
        segments = []
        for item, value in zip(series, values, strict=True):
            if value <= 0:
                continue
            size = value * scale
            y -= size
            segments.append(Segment(item, value, round(y, 2), round(size, 2)))
        described = ", ".join(f"{value:,} {item.label}" for item, value in zip(series, values, strict=True) if value)
        bars.append(
            Bar(
                x=round(left + index * slot + gap / 2, 2),
                width=round(max(1.0, slot - gap), 2),
                title=f"{label}: {described or empty}",
                segments=segments,
            )
        )
    y_ticks = [Tick(round(bottom - value * scale, 2), compact_number(value)) for value in range(0, ceiling + 1, step)]
    x_ticks = [Tick(round(left + (index + 0.5) * slot, 2), text) for index, text in sorted(x_labels.items())]
    return StackedBarChart(
        width, height, left, top, right, bottom, bars, y_ticks, x_ticks, list(series), x_title, y_title
    )
