"""Figure plumbing shared by the report's plots: matplotlib's Agg canvas (no display, no pyplot state), one
colour and line style per configuration across every figure (colour-blind safe), and PNG output."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LINESTYLES = ("-", "--", "-.", ":")
# Okabe & Ito's palette (distinguishable under the common colour-vision deficiencies), yellow last: it is the
# faintest on white.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
BASELINE_STYLE = ("0.45", (0, (1, 1.5)))  # grey dotted: a closed-form reference level, not a racer
FLOOR = 1e-16  # log-scale floor: suboptimality at or below it is plotted here (float64 resolution)


def palette(configs) -> dict:
    """config → (colour, linestyle) in the given order (the verdict's): Okabe–Ito colours with line styles that
    change with the colour's index and with each pass through the colours, so every pair differs and the first
    configurations get the clearest colours."""
    n = len(OKABE_ITO)
    return {c: (OKABE_ITO[i % n], LINESTYLES[(i + i // n) % len(LINESTYLES)]) for i, c in enumerate(configs)}


def log_scale(ax, which: str = "x", base: float = 10) -> None:
    """Log scale on axis ``which`` ("x" or "y"); labels are set by ``tidy_log`` once the data is drawn."""
    (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=base)


def tidy_log(ax, which: str = "x") -> None:
    """Readable labels on a drawn base-10 log axis: plain numbers (0.002, 5, 1e-06), at 1-2-5 steps when the
    axis spans under two decades (otherwise one label per decade would be all there is), never minor labels."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
    numbered_log(axis, lo, hi)


def numbered_log(axis, lo: float, hi: float) -> None:
    """Plain-number labels on a log axis spanning [lo, hi], with enough ticks that some label shows: every
    integer multiple within a decade, 1-2-5 steps within two decades, decades beyond."""
    from matplotlib.ticker import LogLocator

    if lo > 0 and hi / lo < 10:
        axis.set_major_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    elif lo > 0 and hi / lo < 100:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    plain_labels(axis)


def plain_labels(axis) -> None:
    """Major tick labels as plain numbers (3 significant digits), no minor labels."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    axis.set_minor_formatter(NullFormatter())


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
