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

from markupsafe import Markup, escape

from app.core.money import exponent

WIDTH, HEIGHT = 900, 260
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 16, 16, 44


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

    def fmt(self, value: float) -> str:
        text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
        return f"{text}{self.unit}"

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


def _axis_top(values: Sequence[float], count: int = 4) -> float:
    """The axis top: ``count`` equal steps of 1, 2, 2.5 or 5 times a power of ten.

    Whole-number data (counts) gets whole-number steps, so no "2.5 registrations" tick.
    """
    peak = max(values, default=0)
    if peak <= 0:
        return count
    whole = all(float(v).is_integer() for v in values)
    raw = peak / count
    exponent = math.floor(math.log10(raw))
    multipliers = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * 10**exponent for m in multipliers if m * 10**exponent >= raw)
    if whole:
        step = max(1, step)
    return step * count


def _ticks(top: float, count: int = 4) -> list[float]:
    return [top * i / count for i in range(count + 1)]


def render_svg(chart: Chart) -> Markup:
    uid = secrets.token_hex(4)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    top = _axis_top(chart.values)
    n = max(1, len(chart.values))
    slot = plot_w / n

    def y_of(value: float) -> float:
        return PAD_TOP + plot_h - (value / top) * plot_h

    parts: list[str] = [
        f'<svg class="chart chart-{escape(chart.kind)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="chart-t-{uid} chart-d-{uid}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-t-{uid}">{escape(chart.title)}</title>',
        f'<desc id="chart-d-{uid}">{escape(chart.summary())}</desc>',
    ]
    for tick in _ticks(top):
        y = y_of(tick)
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH - PAD_RIGHT}" '
            f'y2="{y:.1f}"/>'
            f'<text class="axis" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(chart.fmt(tick))}</text>"
        )
    # Label every k-th category so the axis stays legible with many points.
    every = max(1, math.ceil(n / 10))
    points: list[tuple[float, float]] = []
    for i, (label, value) in enumerate(zip(chart.labels, chart.values, strict=True)):
        x_mid = PAD_LEFT + slot * i + slot / 2
        tip = f"{escape(label)}: {escape(chart.fmt(value))}"
        if chart.kind == "bar":
            bar_w = max(2.0, slot * 0.7)
            y = y_of(value)
            height = PAD_TOP + plot_h - y
            parts.append(
                f'<rect class="bar" x="{x_mid - bar_w / 2:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{max(height, 0):.1f}"><title>{tip}</title></rect>'
            )
        else:
            points.append((x_mid, y_of(value)))
            parts.append(
                f'<circle class="point" cx="{x_mid:.1f}" cy="{y_of(value):.1f}" r="3.5">'
                f"<title>{tip}</title></circle>"
            )
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{x_mid:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.insert(3 + len(_ticks(top)), f'<polyline class="line" points="{path}"/>')
    base = PAD_TOP + plot_h
    parts.append(
        f'<line class="baseline" x1="{PAD_LEFT}" y1="{base}" x2="{WIDTH - PAD_RIGHT}" y2="{base}"/>'
    )
    if chart.caption:
        parts.append(
            f'<text class="axis-title" x="{PAD_LEFT}" y="{HEIGHT - 6}">'
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
        caption=f"{value_label} per UTC day",
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
        value_label=f"{value_label} ({currency})",
        unit=f" {currency}",
        caption=caption,
    )
