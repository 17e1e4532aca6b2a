"""``quota simulate --plot``: the remaining budget of every limit over time, as a PNG file.

Drawn with matplotlib, an optional extra (``pip install 'quota[plot]'``) imported only here and
only when a chart is asked for: ``import quota`` and the other commands never load it. The
figure is rendered by the Agg canvas directly (no ``pyplot``, no global backend switch), so the
same run writes the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .simulation import Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: One colour per limit, in plan order (Tableau 10, matplotlib's own default cycle).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
#: The image size: inches at DPI dots per inch, 900 x 420 pixels.
SIZE, DPI = (9.0, 4.2), 100
MISSING = "quota simulate --plot needs matplotlib: pip install 'quota[plot]'"


def require_matplotlib() -> None:
    """ConfigError (exit 2) with what to install when matplotlib is missing: called before a
    run, so a long simulation does not end in that error."""
    try:
        import matplotlib  # noqa: F401 - only whether it imports
    except ImportError:
        raise ConfigError(MISSING) from None


def clock_label(seconds: float) -> str:
    """An offset of virtual time in short: 90 -> "1m30", 7200 -> "2h", 172800 -> "2d"."""
    s = round(seconds)
    if s % 86_400 == 0 and s:
        return f"{s // 86_400}d"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}" if s % 3600 else f"{s // 3600}h"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}" if s % 60 else f"{s // 60}m"
    return f"{s}s"


def chart(result: Result) -> Figure:
    """The figure: a step line per limit of ``(seconds, fraction of its limit left)``, x over
    the whole run, y from 0 to 100%, with a legend below the axes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedLocator, FuncFormatter, PercentFormatter
    except ImportError:
        raise ConfigError(MISSING) from None
    duration = result.duration_ms / 1000
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg renderer, for this figure only
    axes = figure.add_subplot()
    drawn = [(name, stats) for name, stats in result.limits.items() if stats.buckets]
    for i, (name, stats) in enumerate(drawn):
        points = stats.points(duration)
        xs = [t for t, _ in points] + [duration]  # hold the last value to the end of the run
        ys = [f for _, f in points] + [points[-1][1]]
        axes.step(xs, ys, where="post", color=PALETTE[i % len(PALETTE)], lw=1.5, label=name)
    axes.set_xlim(0, duration)
    axes.set_ylim(-0.02, 1.02)
    axes.xaxis.set_major_locator(FixedLocator([duration * k / 6 for k in range(7)]))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda t, _: clock_label(t)))
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.grid(True, color="#e1e1e1")
    axes.set_xlabel("virtual time")
    axes.set_ylabel("remaining / limit")
    axes.set_title(title(result), fontsize=10)
    if drawn:
        figure.legend(loc="outside lower center", ncol=min(len(drawn), 6), frameon=False)
    return figure


def title(result: Result) -> str:
    """What the chart shows, in one line: its title, and the PNG's."""
    return f"{result.catalog}/{result.plan}: remaining budget, {result.rate}, seed {result.seed}"


def write_chart(result: Result, path: str) -> None:
    """Write ``chart(result)`` to ``path`` as PNG, with a title and description in its
    metadata; ConfigError naming ``--plot`` when the file cannot be written."""
    figure = chart(result)
    names = ", ".join(name for name, stats in result.limits.items() if stats.buckets)
    metadata = {
        "Title": title(result),
        "Software": "quota simulate",
        "Description": f"y: remaining / limit per limit; x: virtual time; lines: {names}",
    }
    try:
        figure.savefig(path, format="png", metadata=metadata)
    except OSError as exc:
        raise ConfigError(f"--plot {path!r}: {exc.strerror or exc}") from None
