"""The evaluation report's plots, as PNG ``data:`` URIs (matplotlib, imported when drawn).

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so drawing a report
never changes the plotting backend of the process it runs in (a notebook keeps its own).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from medmo_agent.evaluation.published import PublishedTable
from medmo_agent.evaluation.report_tables import ComparisonRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

_DPI = 100
_MEASURED = "#1f3a5f"
_PUBLISHED = ("#d9822b", "#8fb8de", "#9b9b9b")


def _figure(width: float, height: float) -> MplFigure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _data_uri(fig: MplFigure) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _percent_bars(fig: MplFigure, ax: Any, xlabel: str) -> str:
    # horizontal bars on a 0-100 % axis, first row at the top, legend in the free corner
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    return _data_uri(fig)


def comparison_plot(rows: Sequence[ComparisonRow], tables: Sequence[PublishedTable]) -> str | None:
    """Measured (with its 95% interval) and published figures, one bar group per row."""
    rows = [r for r in rows if r.measured is not None and r.measured.value is not None]
    if not rows:
        return None
    n_series = 1 + len(tables)
    height = 0.8 / n_series
    fig = _figure(8, 1.2 + 0.45 * len(rows) * max(1, n_series / 2))
    ax = fig.add_subplot()
    positions = list(range(len(rows)))
    values = [r.measured.value * 100 for r in rows if r.measured and r.measured.value is not None]
    errors = [
        (
            # clamped: rounding (or MedEvalKit's twice-divided accuracy) can put the
            # value a hair outside its interval, and matplotlib refuses negative errors
            (max(0.0, v - r.measured.ci[0] * 100), max(0.0, r.measured.ci[1] * 100 - v))
            if r.measured and r.measured.ci
            else (0.0, 0.0)
        )
        for r, v in zip(rows, values, strict=True)
    ]
    ax.barh(
        [p - 0.4 + height / 2 for p in positions],
        values,
        height=height,
        color=_MEASURED,
        xerr=list(zip(*errors, strict=True)),
        capsize=2,
        label="measured (95% interval)",
    )
    for t_index, table in enumerate(tables):
        pub = [r.published[t_index] for r in rows]
        shown = [(p, v) for p, v in zip(positions, pub, strict=True) if v is not None]
        if not shown:
            continue
        ax.barh(
            [p - 0.4 + height * (t_index + 1.5) for p, _ in shown],
            [v for _, v in shown],
            height=height,
            color=_PUBLISHED[t_index % len(_PUBLISHED)],
            label=f"published: {table.source[:48]}",
        )
    ax.set_yticks(positions, [r.figure.title for r in rows])
    return _percent_bars(fig, ax, "%")


def modes_plot(accuracy: dict[str, dict[str, float | None]]) -> str | None:
    """Accuracy per benchmark (groups) and mode (bars): ``{bench: {mode: fraction}}``."""
    modes = list(dict.fromkeys(m for per in accuracy.values() for m in per))
    if len(modes) < 2:
        return None
    benches = list(accuracy)
    fig = _figure(8, 1.2 + 0.5 * len(benches))
    ax = fig.add_subplot()
    height = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        ys = [b - 0.4 + height * (i + 0.5) for b in range(len(benches))]
        xs = [(accuracy[b].get(mode) or 0.0) * 100 for b in benches]
        ax.barh(ys, xs, height=height, label=mode)
    ax.set_yticks(range(len(benches)), benches)
    return _percent_bars(fig, ax, "accuracy (%)")


def paired_plot(rows: Sequence[tuple[str, str, dict[str, Any]]]) -> str | None:
    """Paired differences (B minus A, percentage points) with their bootstrap intervals."""
    if not rows:
        return None
    fig = _figure(8, 1.2 + 0.4 * len(rows))
    ax = fig.add_subplot()
    ys = list(range(len(rows)))
    diffs = [d["difference"] * 100 for _, _, d in rows]
    # clamped at 0 for the same reason as in comparison_plot: rounding at the interval's ends
    lows = [max(0.0, dv - d["ci_low"] * 100) for dv, (_, _, d) in zip(diffs, rows, strict=True)]
    highs = [max(0.0, d["ci_high"] * 100 - dv) for dv, (_, _, d) in zip(diffs, rows, strict=True)]
    ax.errorbar(diffs, ys, xerr=[lows, highs], fmt="o", color=_MEASURED, capsize=3)
    ax.axvline(0, color="#888", linewidth=1)
    ax.set_yticks(ys, [f"{b}: {label}" for b, label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("difference in accuracy, B minus A (percentage points)")
    ax.grid(axis="x", alpha=0.3)
    return _data_uri(fig)
