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


def log_x(ax, base: float = 10) -> None:
    """Log-scale x axis with labelled major ticks only (minor labels collide on short ranges)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log", base=base)
    ax.xaxis.set_minor_formatter(NullFormatter())


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
