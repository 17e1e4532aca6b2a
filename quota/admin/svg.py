"""Inline SVG for the dashboard, drawn on the server: a gauge per limit and a bar chart of the
daily history. No library and no script: the numbers are readable without JavaScript.
"""

from __future__ import annotations

from html import escape

#: Gauge colours by how full: calm, warning (>= 75%), full (>= 100%).
CALM, WARN, FULL = "#2f855a", "#c05621", "#c53030"


def fill_colour(fraction: float) -> str:
    return FULL if fraction >= 1 else WARN if fraction >= 0.75 else CALM


def gauge(fraction: float, label: str) -> str:
    """A horizontal bar, ``fraction`` (0..1) of it filled; the script moves its ``width``."""
    return (
        f'<svg class="gauge" viewBox="0 0 100 8" preserveAspectRatio="none" role="img"'
        f' aria-label="{escape(label)}">'
        '<rect width="100" height="8" fill="#e2e8f0"/>'
        f'<rect class="fill" width="{bar_width(fraction):.2f}" height="8"'
        f' fill="{fill_colour(fraction)}"/></svg>'
    )


def bar_width(fraction: float) -> float:
    """The filled width in percent: anything used shows (at least 0.6%), none shows nothing."""
    f = min(max(fraction, 0.0), 1.0)
    return 0.0 if f == 0 else max(f * 100, 0.6)


def short(n: float) -> str:
    """1234 -> 1.2k, 5300000 -> 5.3M: axis labels that fit."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{n:g}"


def _ceiling(top: int) -> int:
    """A round axis maximum at or above ``top``: 1, 2 or 4 times a power of ten, 2 at least."""
    if top <= 2:
        return 2
    scale = 1
    while True:
        for step in (1, 2, 4):  # halves stay whole numbers
            if step * scale >= top:
                return step * scale
        scale *= 10


def bar_chart(meter: str, daily: dict[str, int], width: int = 640, height: int = 180) -> str:
    """Daily totals of one meter as bars, oldest left, with a labelled axis; each bar has a
    ``<title>`` (the day and its total) for a pointer to read."""
    left, bottom, top_pad = 48, 22, 10
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    days = list(daily)
    ceiling = _ceiling(max(daily.values(), default=0))
    step = plot_w / max(len(days), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="daily {escape(meter)}" data-meter="{escape(meter)}">'
    ]
    for i in range(3):  # grid lines at 0, half, the top
        value = ceiling * i / 2
        y = top_pad + plot_h - plot_h * i / 2
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#cbd5e0"'
            ' stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{short(value)}</text>"
        )
    for i, day in enumerate(days):
        value = daily[day]
        h = plot_h * value / ceiling
        x = left + i * step + step * 0.15
        y = top_pad + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}"'
            f' fill="#3182ce"><title>{escape(day)}: {value:,} {escape(meter)}</title></rect>'
        )
    for i in (0, len(days) // 2, len(days) - 1) if days else ():
        x = left + i * step + step / 2
        parts.append(
            f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" class="axis">'
            f"{escape(days[i][5:])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
