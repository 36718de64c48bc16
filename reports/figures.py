"""Figure plumbing shared by the report's plots: matplotlib's Agg canvas (no display, no pyplot state), one
colour and line style per configuration across every figure, and PNG output."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LINESTYLES = ("-", "--", "-.", ":")
FLOOR = 1e-16  # log-scale floor: suboptimality at or below it is plotted here (float64 resolution)


def palette(configs) -> dict:
    """config → (colour, linestyle): the 10 dark tab20 colours, then the 10 light ones (so neighbours in the
    legend differ clearly), then the same with the next line style."""
    from matplotlib import colormaps

    tab20 = colormaps["tab20"].colors
    colours = tab20[0::2] + tab20[1::2]
    return {c: (colours[i % 20], LINESTYLES[(i // 20) % len(LINESTYLES)]) for i, c in enumerate(sorted(configs))}


def log_scale(ax, which: str = "x", base: float = 10) -> None:
    """Log scale on axis ``which`` ("x" or "y"); labels are set by ``tidy_log`` once the data is drawn."""
    (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=base)


def tidy_log(ax, which: str = "x") -> None:
    """Readable labels on a drawn base-10 log axis: plain numbers (0.002, 5, 1e-06), at 1-2-5 steps when the
    axis spans under two decades (otherwise one label per decade would be all there is), never minor labels."""
    from matplotlib.ticker import LogLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
    if lo > 0 and hi / lo < 100:
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
