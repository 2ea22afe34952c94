"""Server-rendered SVG charts: no JavaScript, no external library, readable without CSS.

Each chart is an ``<svg role="img">`` labelled by its title and a text summary; every bar or
point has a ``<title>`` (the browser shows it on hover) and the template renders the same
numbers as a table next to it (``chart`` macro), so the figures are never only in the picture.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import gettext as _
from markupsafe import Markup, escape

from app.core.i18n import translate_message
from app.core.money import exponent

#: The drawing's own units. The viewBox is close to the size a chart is shown at (a panel on a
#: desktop, at most 46rem), so axis text (console.css: 14 units, 18 on a phone where the chart
#: is drawn ~340 px wide) lands at 9-15 CSS px.
WIDTH, HEIGHT = 640, 300
PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 12, 28, 50
#: Advance of a tick-label character at the largest axis font size (18 units, tabular digits).
CHAR_W = 10.4


@dataclass(frozen=True)
class Chart:
    title: str
    labels: list[str]
    values: list[float]
    kind: str = "bar"  # or "line"
    value_label: str = "Value"
    #: How a value is written in titles and the table (e.g. money formatting).
    unit: str = ""
    #: Text under the x axis (what one category is).
    caption: str = ""

    def __post_init__(self) -> None:
        # The texts are English msgids (extracted by app.core.i18n_extract): shown translated.
        for name in ("title", "value_label", "caption"):
            object.__setattr__(self, name, translate_message(getattr(self, name)))

    def fmt(self, value: float) -> str:
        return f"{self.tick(value)}{self.unit}"

    def tick(self, value: float) -> str:
        """A number as the axis writes it (the unit is written once, above the axis)."""
        if float(value).is_integer():
            return f"{value:,.0f}"
        return f"{value:,.2f}"

    @property
    def rows(self) -> list[tuple[str, str]]:
        return [(label, self.fmt(v)) for label, v in zip(self.labels, self.values, strict=True)]

    def summary(self) -> str:
        if not self.values:
            return f"{self.title}: no data."
        total = sum(self.values)
        peak = max(self.values)
        at = self.labels[self.values.index(peak)]
        return (
            f"{self.title}: {len(self.values)} points from {self.labels[0]} to {self.labels[-1]}, "
            f"total {self.fmt(total)}, highest {self.fmt(peak)} on {at}."
        )

    def svg(self) -> Markup:
        return render_svg(self)


def _nice_step(raw: float, whole: bool) -> float:
    """The smallest step of 1, 2, 2.5 or 5 times a power of ten that is >= ``raw``."""
    exponent = math.floor(math.log10(raw))
    multipliers = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * 10**exponent for m in multipliers if m * 10**exponent >= raw)
    return max(1, step) if whole else step


def _axis(values: Sequence[float], count: int = 4) -> tuple[float, float, float]:
    """``(bottom, top, step)`` of an axis that includes zero and every value.

    Equal steps of 1, 2, 2.5 or 5 times a power of ten; about ``count`` of them. Whole-number
    data (counts) gets whole-number steps, so no "2.5 registrations" tick. A negative figure
    (a negative NGR) gets ticks below zero instead of being drawn off the axis.
    """
    low = min(0.0, *values) if values else 0.0
    high = max(0.0, *values) if values else 0.0
    if high == low:
        return 0.0, float(count), 1.0
    whole = all(float(v).is_integer() for v in values)
    step = _nice_step((high - low) / count, whole)
    bottom = math.floor(low / step - 1e-9) * step if low < 0 else 0.0
    top = math.ceil(high / step - 1e-9) * step if high > 0 else 0.0
    return bottom, top, step


def _axis_top(values: Sequence[float], count: int = 4) -> float:
    """The axis top for non-negative data (kept for callers that draw from zero)."""
    return _axis(values, count)[1]


def _ticks(top: float, count: int = 4, bottom: float = 0.0) -> list[float]:
    step = (top - bottom) / count
    return [bottom + step * i for i in range(count + 1)]


def _axis_ticks(bottom: float, top: float, step: float) -> list[float]:
    n = round((top - bottom) / step)
    return [round(bottom + step * i, 10) for i in range(n + 1)]


def render_svg(chart: Chart) -> Markup:
    uid = secrets.token_hex(4)
    bottom, top, step = _axis(chart.values)
    ticks = _axis_ticks(bottom, top, step)
    labels = [chart.tick(t) for t in ticks]
    # The left margin fits the longest tick label: nothing is clipped ("00 EUR").
    pad_left = max(36.0, 12 + CHAR_W * max(len(text) for text in labels))
    plot_w = WIDTH - pad_left - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    n = max(1, len(chart.values))
    slot = plot_w / n

    def y_of(value: float) -> float:
        return PAD_TOP + plot_h - ((value - bottom) / (top - bottom)) * plot_h

    zero = y_of(0)
    parts: list[str] = [
        f'<svg class="chart chart-{escape(chart.kind)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="chart-t-{uid} chart-d-{uid}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-t-{uid}">{escape(chart.title)}</title>',
        f'<desc id="chart-d-{uid}">{escape(chart.summary())}</desc>',
    ]
    if chart.unit.strip():
        parts.append(
            f'<text class="axis-unit" x="4" y="{PAD_TOP - 10}">{escape(chart.unit.strip())}</text>'
        )
    for tick, text in zip(ticks, labels, strict=True):
        y = y_of(tick)
        parts.append(
            f'<line class="grid" x1="{pad_left:.1f}" y1="{y:.1f}" x2="{WIDTH - PAD_RIGHT}" '
            f'y2="{y:.1f}"/>'
            f'<text class="axis" x="{pad_left - 8:.1f}" y="{y + 5:.1f}" text-anchor="end">'
            f"{escape(text)}</text>"
        )
    grid_end = len(parts)
    # Label every k-th category so labels never overlap, and keep each one inside the drawing.
    longest = max((len(label) for label in chart.labels), default=1)
    every = max(1, math.ceil(n / max(1, plot_w // (CHAR_W * (longest + 2)))))
    points: list[tuple[float, float]] = []
    for i, (label, value) in enumerate(zip(chart.labels, chart.values, strict=True)):
        x_mid = pad_left + slot * i + slot / 2
        tip = f"{escape(label)}: {escape(chart.fmt(value))}"
        if chart.kind == "bar":
            bar_w = max(2.0, slot * 0.7)
            y = y_of(value)
            top_y, height = (y, zero - y) if value >= 0 else (zero, y - zero)
            klass = "bar" if value >= 0 else "bar bar-negative"
            parts.append(
                f'<rect class="{klass}" x="{x_mid - bar_w / 2:.1f}" y="{top_y:.1f}" '
                f'width="{bar_w:.1f}" height="{max(height, 0):.1f}"><title>{tip}</title></rect>'
            )
        else:
            points.append((x_mid, y_of(value)))
            parts.append(
                f'<circle class="point" cx="{x_mid:.1f}" cy="{y_of(value):.1f}" r="3.5">'
                f"<title>{tip}</title></circle>"
            )
        if i % every == 0:
            half = CHAR_W * len(label) / 2
            x_text = min(max(x_mid, half), WIDTH - half)
            parts.append(
                f'<text class="axis" x="{x_text:.1f}" y="{HEIGHT - PAD_BOTTOM + 22}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.insert(grid_end, f'<polyline class="line" points="{path}"/>')
    parts.append(
        f'<line class="baseline" x1="{pad_left:.1f}" y1="{zero:.1f}" x2="{WIDTH - PAD_RIGHT}" '
        f'y2="{zero:.1f}"/>'
    )
    if chart.caption:
        parts.append(
            f'<text class="axis-title" x="{pad_left:.1f}" y="{HEIGHT - 8}">'
            f"{escape(chart.caption)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def daily_chart(
    title: str, points: Sequence, *, value_label: str, kind: str = "bar", unit: str = ""
) -> Chart:
    """A chart of ``reports.SeriesPoint``s labelled by day (``23 Nov``)."""
    return Chart(
        title=title,
        labels=[p.day.strftime("%d %b") for p in points],
        values=[p.value for p in points],
        kind=kind,
        value_label=value_label,
        unit=unit,
        caption=_("%(label)s per UTC day", label=translate_message(value_label)),
    )


def money_chart(
    title: str,
    labels: Sequence[str],
    minor_values: Sequence[int],
    currency: str,
    *,
    value_label: str,
    kind: str = "bar",
    caption: str = "",
) -> Chart:
    """A chart of money: drawn in major units (display only; the report keeps minor units)."""
    scale = 10 ** exponent(currency)
    return Chart(
        title=title,
        labels=list(labels),
        values=[v / scale for v in minor_values],
        kind=kind,
        value_label=f"{translate_message(value_label)} ({currency})",
        unit=f" {currency}",
        caption=caption,
    )
