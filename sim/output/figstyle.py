"""What every qsim figure shares: colours, line styles, legends beside the data, axes in units.

Rules the figures follow, so a reader can take them at face value:

- a legend never covers data: it sits outside the axes (:func:`legend_outside`);
- lines that may coincide (two arms with identical results) differ in colour *and* dash
  and marker (:func:`line_style`), so the one drawn last never hides the other;
- a share is drawn in percent, a duration in seconds, a rate per second, and the axis says so.
"""

from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

COLOURS = ("#264653", "#e76f51", "#2a9d8f", "#e9c46a", "#8d99ae", "#9b2226", "#457b9d", "#f4a261")
"""Up to eight lines; more lines take matplotlib's tab20 (twenty distinct colours)."""
DASHES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def colour(position: int, count: int) -> str:
    if count <= len(COLOURS):
        return COLOURS[position % len(COLOURS)]
    from matplotlib import colormaps

    red, green, blue, _ = colormaps["tab20"](position % 20)
    return f"#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"


def sequential(position: int, count: int) -> str:
    """Colours along an ordered axis (low to high load): light to dark of one colour map."""
    from matplotlib import colormaps

    fraction = 0.15 + 0.75 * (position / max(1, count - 1))
    red, green, blue, _ = colormaps["viridis"](1 - fraction)
    return f"#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"


def line_style(position: int, count: int, ordered: bool = False) -> dict[str, Any]:
    """Colour, dash and marker of line ``position`` of ``count``: every pair differs in more than colour."""
    return {
        "color": sequential(position, count) if ordered else colour(position, count),
        "linestyle": DASHES[position % len(DASHES)],
        "marker": MARKERS[position % len(MARKERS)],
        "markevery": 0.1,
        "markersize": 4,
    }


def legend_outside(axes: Axes, **options: Any) -> None:
    """A legend to the right of the axes (constrained layout makes room for it), if anything is labelled."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        axes.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                    fontsize=8, **options)


def percent_axis(axes: Axes) -> None:
    """Show a share (0-1) on the y axis as a percentage."""
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))


def shorten(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
