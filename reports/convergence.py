"""Convergence curves: objective, relative error and relative suboptimality versus time and iteration.

Seeds are repetitions: each run's trace is a step function (its value holds from one trace point to the next
and after its last point), the runs of a configuration are sampled on the union of their abscissae, and the
curve is the median over runs with a min–max band. Cost: O(points × runs) per configuration.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from reports.figures import BASELINE_STYLE, FLOOR, log_scale, new_figure, numbered_log, tidy_log

MAX_POINTS = 400  # abscissae per curve; more only thickens the PNG


def step_values(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The step function through (x, y) (x sorted) at ``grid``: y at the last x ≤ g, NaN before the first x."""
    idx = np.searchsorted(x, grid, side="right") - 1
    return np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)


def median_curve(traces: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """(grid, median, low, high) over runs of step functions given as (x, y) pairs with sorted x."""
    grid = np.unique(np.concatenate([x for x, _ in traces]))
    if len(grid) > MAX_POINTS:
        grid = grid[np.unique(np.linspace(0, len(grid) - 1, MAX_POINTS).round().astype(int))]
    values = np.vstack([step_values(x, y, grid) for x, y in traces])
    with warnings.catch_warnings():  # grid points before every run's first point are all-NaN: NaN is right
        warnings.simplefilter("ignore", RuntimeWarning)
        return grid, np.nanmedian(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)


def curves(rows: pd.DataFrame, x: str, y: str) -> dict:
    """config → (grid, median, low, high) of column ``y`` against ``x`` over the runs in ``rows``."""
    out = {}
    for config, g in rows.groupby("config", sort=True):
        traces = [(r[x].to_numpy(float), r[y].to_numpy(float)) for _, r in g.groupby("run_id")
                  if np.isfinite(r[y]).any()]
        if traces:
            out[config] = median_curve(traces)
    return out


PANELS = (("time", "rel_error", "solver time [s]", "relative error f / ΣWA²"),
          ("iteration", "rel_error", "iteration", "relative error f / ΣWA²"),
          ("time", "subopt", "solver time [s]", "relative suboptimality (f − f_ref)/(ΣWA² − f_ref)"),
          ("iteration", "subopt", "iteration", "relative suboptimality (f − f_ref)/(ΣWA² − f_ref)"))
EVENT_MARKER = "X"


def figure(rows: pd.DataFrame, ref: pd.Series, colours: dict, title: str, shown: list, baseline=None,
           events: pd.DataFrame | None = None):
    """Four panels for one instance: relative error and suboptimality versus time and versus iteration
    (median over seeds, min–max band), one line per configuration in ``shown`` (in that order), log scales
    where values span decades; the raw objective f is the right axis of the relative-error panels.
    ``baseline``: a closed-form configuration drawn as a horizontal reference level (its median final value).
    ``events``: rows (config, time, iteration, rel_error, subopt) marked with an X on the curves, e.g. the
    iteration where adam_sgd switched to SGD."""
    fig = new_figure(13, 8.5)
    axes = fig.subplots(2, 2)
    wn = float(ref["weighted_norm"])
    final = rows[rows["final"]]
    for ax, (x, y, xlabel, ylabel) in zip(axes.flat, PANELS):
        drawn = curves(rows[rows["config"].isin(shown) & (rows["config"] != baseline)], x, y)
        for config in [c for c in shown if c in drawn]:
            grid, med, lo, hi = drawn[config]
            colour, style = colours[config]
            med, lo, hi = (np.maximum(v, FLOOR) for v in (med, lo, hi))
            ax.plot(grid, med, drawstyle="steps-post", color=colour, linestyle=style, label=config)
            ax.plot(grid[-1:], med[-1:], marker="o", color=colour, markersize=4)
            if np.any(hi > lo):
                ax.fill_between(grid, lo, hi, step="post", color=colour, alpha=0.15, linewidth=0)
        if baseline is not None:
            level = final.loc[final["config"] == baseline, y].median()
            if np.isfinite(level):
                ax.axhline(max(level, FLOOR), color=BASELINE_STYLE[0], linestyle=BASELINE_STYLE[1],
                           label=f"{baseline} (best closed form: reference level)")
        if events is not None:
            for e in events.itertuples():
                if e.config in shown and np.isfinite(getattr(e, y)):
                    ax.plot([getattr(e, x)], [max(getattr(e, y), FLOOR)], marker=EVENT_MARKER, markersize=9,
                            color=colours[e.config][0], markeredgecolor="white", linestyle="none",
                            label=f"{e.config}: {e.event} (iteration {e.iteration})")
        log_scale(ax, "y")
        tidy_log(ax, "y")
        if x == "time":
            log_scale(ax, "x")
            tidy_log(ax, "x")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        if y == "rel_error" and wn > 0:
            right = ax.secondary_yaxis("right", functions=(lambda v: v * wn, lambda v: v / wn))
            right.set_ylabel("objective f", fontsize=9)
            lo, hi = ax.get_ylim()
            numbered_log(right.yaxis, lo * wn, hi * wn)
    kind = ref["f_ref_kind"]
    fig.suptitle(f"{title}  —  f_ref = {ref['f_ref']:.6g} ({kind}), ΣWA² = {wn:.6g}", fontsize=11)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        unique = dict(zip(labels, handles))
        fig.legend(unique.values(), unique.keys(), loc="outside right upper", fontsize=8)
    return fig
