"""PNG charts of the library, drawn with matplotlib's headless Agg backend. No Discord here.

Each chart is its own `matplotlib.figure.Figure` on an Agg canvas: no pyplot, no global figure
state, so charts can be rendered concurrently in worker threads (`asyncio.to_thread`). Renders
are deterministic and kept in a small LRU cache keyed by the data, so the same chart is drawn
once.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["CHART_DPI", "CHART_SIZE", "render_tag_trends"]

CHART_SIZE = (1000, 500)  # pixels
CHART_DPI = 100

# Discord's dark theme: the chat background, its text colours, and colours that stand out on it.
BACKGROUND = "#313338"
PANEL = "#2b2d31"
TEXT = "#dbdee1"
MUTED = "#949ba4"
GRID = "#4e5058"
PALETTE = ("#5865f2", "#57f287", "#fee75c", "#eb459e", "#ed4245", "#3ba5ff", "#ffa14a", "#b98cff")

_CACHE_SIZE = 32

Key = tuple[tuple[dt.date, ...], tuple[tuple[str, tuple[int, ...]], ...], str]


def render_tag_trends(weeks: Sequence[dt.date], series: Mapping[str, Sequence[int]], *, title: str) -> bytes:
    """A PNG (CHART_SIZE pixels) of papers per week, one line per tag, with a legend.

    `weeks` are the x values (week starts); each series has one count per week.
    """
    if not weeks:
        raise ValueError("a trend chart needs at least one week")
    for name, counts in series.items():
        if len(counts) != len(weeks):
            raise ValueError(f"series {name!r} has {len(counts)} counts for {len(weeks)} weeks")
    key: Key = (tuple(weeks), tuple((name, tuple(int(c) for c in counts)) for name, counts in series.items()), title)
    return _render_tag_trends(key)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _render_tag_trends(key: Key) -> bytes:
    weeks, series, title = key
    width, height = CHART_SIZE
    figure = Figure(figsize=(width / CHART_DPI, height / CHART_DPI), dpi=CHART_DPI,
                    facecolor=BACKGROUND, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_facecolor(PANEL)
    for number, (name, counts) in enumerate(series):
        axes.plot(list(weeks), list(counts), label=_label(name), color=PALETTE[number % len(PALETTE)],
                  linewidth=2.2, marker="o", markersize=3.5 if len(weeks) > 26 else 5)
    axes.set_title(title.replace("$", r"\$"), color=TEXT, fontsize=14, loc="left", pad=12)
    axes.set_ylabel("papers per week", color=MUTED)
    axes.set_ylim(bottom=0)
    if len(weeks) == 1:
        axes.set_xlim(weeks[0] - dt.timedelta(days=7), weeks[0] + dt.timedelta(days=7))
    locator = AutoDateLocator(minticks=3, maxticks=10)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, color=GRID, linewidth=0.6, alpha=0.8)
    axes.tick_params(colors=MUTED, labelcolor=TEXT)
    for spine in axes.spines.values():
        spine.set_color(GRID)
    axes.xaxis.get_offset_text().set_color(MUTED)
    if series:
        legend = figure.legend(loc="outside right upper", frameon=False, labelcolor=TEXT, fontsize=10,
                               title="tag", title_fontsize=10)
        legend.get_title().set_color(MUTED)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI, facecolor=BACKGROUND, metadata={"Software": None})
    return buffer.getvalue()


def _label(name: str) -> str:
    """A legend entry: at most 28 characters, and never read as mathtext."""
    text = name if len(name) <= 28 else name[:27] + "…"
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text  # a leading "_" would hide the entry


render_tag_trends.cache_info = _render_tag_trends.cache_info  # type: ignore[attr-defined]
render_tag_trends.cache_clear = _render_tag_trends.cache_clear  # type: ignore[attr-defined]
