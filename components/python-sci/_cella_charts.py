"""The data of a matplotlib chart, in the form E2B's code interpreter gives as `Result.chart`:
`line`, `scatter`, `bar` and `pie` charts, and a `superchart` of several axes.

Only what the figure itself holds is read (lines, collections, bars, wedges, labels, ticks);
a figure this does not recognise gives no chart, and its PNG still comes back.
"""

import math


def number(value):
    """A JSON-safe number (or text for dates and categories)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(f) or math.isinf(f):
        return None
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def scale(ax, axis):
    try:
        return (ax.get_xscale() if axis == "x" else ax.get_yscale()) or "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def ticks(ax, axis):
    getter = ax.get_xticks if axis == "x" else ax.get_yticks
    labels = ax.get_xticklabels if axis == "x" else ax.get_yticklabels
    return [number(t) for t in getter()], [t.get_text() for t in labels()]


def two_d(ax, kind):
    return {
        "type": kind,
        "title": ax.get_title() or None,
        "x_label": ax.get_xlabel() or None,
        "y_label": ax.get_ylabel() or None,
        "x_unit": None,
        "y_unit": None,
    }


def point_chart(ax, kind, series):
    chart = two_d(ax, kind)
    for axis in ("x", "y"):
        values, labels = ticks(ax, axis)
        chart[f"{axis}_ticks"] = values
        chart[f"{axis}_tick_labels"] = labels
        chart[f"{axis}_scale"] = scale(ax, axis)
    chart["elements"] = series
    return chart


def axes_chart(ax):
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer
    from matplotlib.patches import Wedge

    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    if wedges:
        return {
            "type": "pie",
            "title": ax.get_title() or None,
            "elements": [
                {"label": w.get_label(), "angle": number(w.theta2 - w.theta1), "radius": number(w.r)} for w in wedges
            ],
        }
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    if bars:
        chart = two_d(ax, "bar")
        _, tick_labels = ticks(ax, "x")
        elements = []
        for container in bars:
            group = container.get_label() or ""
            for i, rect in enumerate(container.patches):
                label = tick_labels[i] if i < len(tick_labels) and len(tick_labels) == len(container.patches) else ""
                elements.append({"label": label or str(number(rect.get_x() + rect.get_width() / 2)),
                                 "group": group, "value": number(rect.get_height())})
        chart["elements"] = elements
        return chart
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    if scatters:
        series = [
            {"label": c.get_label(), "points": [[number(x), number(y)] for x, y in c.get_offsets()]} for c in scatters
        ]
        return point_chart(ax, "scatter", series)
    lines = ax.get_lines()
    if lines:
        series = [
            {"label": line.get_label(), "points": [[number(x), number(y)] for x, y in zip(line.get_xdata(), line.get_ydata())]}
            for line in lines
        ]
        return point_chart(ax, "line", series)
    return None


def chart_of(fig):
    charts = [c for c in (axes_chart(ax) for ax in fig.get_axes()) if c is not None]
    if not charts:
        return None
    if len(charts) == 1:
        return charts[0]
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else None
    return {"type": "superchart", "title": title, "elements": charts}
