"""Time to target: the first solver time at which a run's relative suboptimality s(f) ≤ τ, for τ in TARGETS.

A run that never gets there has time +inf ("not reached"); over the seeds of a configuration the time is the
median, so a configuration counts as reaching τ when more than half of its runs do.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from matplotlib.patches import Patch

from reports.data import TARGETS
from reports.figures import OKABE_ITO, log_scale, new_figure, tidy_log


def run_times(rows: pd.DataFrame, targets=TARGETS) -> pd.DataFrame:
    """One row per (run, target): run_id, instance, config, target, time (inf when not reached)."""
    keys = rows.drop_duplicates("run_id")[["run_id", "instance", "config"]]
    parts = []
    for tau in targets:
        hit = rows[rows["subopt"] <= tau].groupby("run_id")["time"].min()
        part = keys.assign(target=tau)
        part["time"] = part["run_id"].map(hit).fillna(np.inf).to_numpy(float)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def time_to_target(rows: pd.DataFrame, targets=TARGETS) -> pd.DataFrame:
    """Median over runs per (instance, config, target): columns time, reached (runs that got there), runs."""
    t = run_times(rows, targets)
    return t.groupby(["instance", "config", "target"]).agg(
        time=("time", "median"), reached=("time", lambda v: int(np.isfinite(v).sum())),
        runs=("time", "size")).reset_index()


def figure(ttt: pd.DataFrame, title: str, shown: list):
    """Horizontal bars per configuration of ``shown`` (in that order), one per target; a hatched grey bar to
    the edge means not reached."""
    configs = [c for c in shown if c in set(ttt["config"])]
    ttt = ttt[ttt["config"].isin(configs)]
    targets = sorted(ttt["target"].unique(), reverse=True)
    fig = new_figure(10, 1.2 + 0.42 * len(configs) * max(1, len(targets)) / 2)
    ax = fig.subplots()
    finite = ttt.loc[np.isfinite(ttt["time"]) & (ttt["time"] > 0), "time"]
    lo = finite.min() / 2 if len(finite) else 1e-4
    hi = finite.max() * 4 if len(finite) else 1.0
    height = 0.8 / len(targets)
    colours = (OKABE_ITO[4], OKABE_ITO[1], OKABE_ITO[3])  # blue, orange, bluish green: one per target
    for k, tau in enumerate(targets):
        sel = ttt[ttt["target"] == tau].set_index("config").reindex(configs)
        y = np.arange(len(configs)) + (k - (len(targets) - 1) / 2) * height
        times = sel["time"].to_numpy(float)
        ok = np.isfinite(times)
        ax.barh(y[ok], times[ok] - lo, left=lo, height=height, color=colours[k % len(colours)])
        ax.barh(y[~ok], hi - lo, left=lo, height=height, color="0.9", edgecolor="0.6", hatch="//")
        for yy, n_runs in zip(y[~ok], sel["runs"].to_numpy()[~ok]):
            ax.text(lo * 1.1, yy, f"not reached (s ≤ {tau:g})" if pd.notna(n_runs) else "not run",
                    va="center", fontsize=7, color="0.3")
    log_scale(ax, "x")
    ax.set_xlim(lo, hi)
    tidy_log(ax, "x")
    ax.set_yticks(np.arange(len(configs)), configs, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("median solver time to reach the target [s]")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=colours[k % len(colours)], label=f"s ≤ {tau:g}") for k, tau in enumerate(targets)]
    handles.append(Patch(facecolor="0.9", edgecolor="0.6", hatch="//", label="not reached"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    ax.set_title(f"{title}: time to relative suboptimality targets", fontsize=11)
    return fig
