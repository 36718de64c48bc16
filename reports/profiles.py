"""Comparisons over all problems: performance profiles, data profiles and the win-rate matrix.

Input is a table of times to a target, one row per problem instance and one column per configuration
(seconds; +inf = not reached, NaN = not run, which counts as not reached: every profile is over the same
solver set and the same problems).

- Dolan & Moré (2002) performance profile: r_ps = t_ps / min_s t_ps and ρ_s(α) = |{p : r_ps ≤ α}| / |P|.
  ρ_s(1) is the fraction of problems where s is fastest, ρ_s(∞) the fraction it solves at all.
- Moré & Wild (2009) data profile: d_s(κ) = |{p : t_ps / u_p ≤ κ}| / |P| with u_p the problem's work unit
  (``reports.clocks``: one dense m×n×r product at the GEMM rate the runs' calibrations recorded), the fraction
  of problems solved within a budget of κ units.
- Win-rate matrix: wins[i, j] = the number of problems, run by both, on which i beats j (see ``beats``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from reports.figures import log_scale, new_figure, tidy_log

TIME_FLOOR = 1e-9  # seconds: a recorded time of 0 (below the clock's resolution) counts as this


def _failures_as_inf(times: pd.DataFrame) -> pd.DataFrame:
    return times.astype(float).fillna(np.inf).clip(lower=TIME_FLOOR)


def performance_ratios(times: pd.DataFrame) -> pd.DataFrame:
    """r_ps = t_ps / min_s t_ps (inf where s failed on p, or where no solver solved p)."""
    t = _failures_as_inf(times)
    best = t.min(axis=1)
    ratios = t.div(best.where(np.isfinite(best)), axis=0)
    return ratios.fillna(np.inf)


def profile(values: pd.DataFrame, grid) -> pd.DataFrame:
    """Fraction of rows (problems) with value ≤ x, for x in ``grid``, per column: index grid, columns configs."""
    v = _failures_as_inf(values).to_numpy()
    grid = np.asarray(grid, dtype=float)
    frac = (v[:, :, None] <= grid[None, None, :]).mean(axis=0) if len(v) else np.zeros((v.shape[1], len(grid)))
    return pd.DataFrame(frac.T, index=pd.Index(grid, name="x"), columns=values.columns)


def performance_profile(times: pd.DataFrame, grid=None) -> pd.DataFrame:
    """ρ_s(α) on ``grid`` (default: α = 1 and every finite ratio that occurs)."""
    ratios = performance_ratios(times)
    if grid is None:
        grid = _breakpoints(ratios, start=1.0)
    return profile(ratios, grid)


def data_profile(times: pd.DataFrame, units: pd.DataFrame, grid=None) -> pd.DataFrame:
    """d_s(κ) on ``grid`` (default: every budget at which some configuration solves some problem).
    ``units``: the work unit u_ps in seconds, same shape as ``times``; problems where a configuration that
    ran has a NaN unit (its device is not available here) are left out."""
    keep = (units.notna() | times.isna()).all(axis=1)  # a configuration that did not run needs no unit
    budgets = (_failures_as_inf(times[keep]) / units[keep]).fillna(np.inf)
    if grid is None:
        grid = _breakpoints(budgets, start=None)
    return profile(budgets, grid)


def _breakpoints(values: pd.DataFrame, start) -> np.ndarray:
    v = values.to_numpy(float)
    finite = np.unique(v[np.isfinite(v)])
    points = finite if start is None else np.union1d([start], finite)
    return points if len(points) else np.array([1.0 if start is None else start])


def beats(key_i: tuple, key_j: tuple) -> bool:
    """Strict order on per-problem outcomes ``(level, time, subopt)``: more targets reached wins; at the same
    level > 0 the shorter time to the tightest reached target wins; at level 0 the lower final relative
    suboptimality wins. Equal outcomes are ties (neither wins)."""
    (li, ti, si), (lj, tj, sj) = key_i, key_j
    if li != lj:
        return li > lj
    return ti < tj if li > 0 else si < sj


def outcomes(ttt: pd.DataFrame, best_subopt: pd.Series) -> dict:
    """(instance, config) → (level, time, subopt): the number of targets reached (median over seeds), the
    median time to the tightest of them (inf at level 0) and the median best relative suboptimality."""
    out = {}
    for (inst, config), g in ttt.groupby(["instance", "config"]):
        reached = g[np.isfinite(g["time"])]
        level = len(reached)
        time = float(reached.loc[reached["target"].idxmin(), "time"]) if level else np.inf
        out[(inst, config)] = (level, time, float(best_subopt.get((inst, config), np.inf)))
    return out


def win_matrix(ttt: pd.DataFrame, best_subopt: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(wins, shared): wins[i, j] = problems where i beats j; shared[i, j] = problems both ran."""
    res = outcomes(ttt, best_subopt)
    configs = sorted({c for _, c in res})
    instances = sorted({p for p, _ in res})
    wins = pd.DataFrame(0, index=pd.Index(configs, name="solver"), columns=configs)
    shared = wins.copy()
    for p in instances:
        for i in configs:
            for j in configs:
                if i != j and (p, i) in res and (p, j) in res:
                    shared.loc[i, j] += 1
                    wins.loc[i, j] += beats(res[(p, i)], res[(p, j)])
    return wins, shared


def _step_plot(ax, prof: pd.DataFrame, colours: dict, xmax: float, base: float):
    for config in prof.columns:
        colour, style = colours[config]
        x = np.append(prof.index.to_numpy(float), xmax)
        y = np.append(prof[config].to_numpy(), prof[config].to_numpy()[-1])
        ax.plot(x, y, drawstyle="steps-post", color=colour, linestyle=style, label=config)
    log_scale(ax, "x", base)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)


def profiles_figure(perf: dict, data: dict, colours: dict, n_problems: int):
    """Performance profiles (top row) and data profiles (bottom row), one column per target τ."""
    targets = sorted(perf, reverse=True)
    fig = new_figure(4.3 * len(targets) + 2.5, 8)
    axes = fig.subplots(2, len(targets), squeeze=False)
    for k, tau in enumerate(targets):
        xmax = max(2.0, 2 * float(perf[tau].index.max()))
        _step_plot(axes[0, k], perf[tau], colours, xmax, base=2)
        axes[0, k].set_xlim(1, xmax)
        axes[0, k].set_title(f"performance profile, s ≤ {tau:g}", fontsize=10)
        axes[0, k].set_xlabel("α: time / best time on the problem")
        prof = data.get(tau)
        if prof is not None and len(prof):
            xmax = 2 * float(prof.index.max())
            _step_plot(axes[1, k], prof, colours, xmax, base=10)
            axes[1, k].set_xlim(max(float(prof.index.min()) / 2, 1e-3), xmax)
            tidy_log(axes[1, k], "x")
        axes[1, k].set_title(f"data profile, s ≤ {tau:g}", fontsize=10)
        axes[1, k].set_xlabel("κ: budget in m×n×r products")
    axes[0, 0].set_ylabel(f"fraction of the {n_problems} problems")
    axes[1, 0].set_ylabel("fraction of problems solved")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    return fig


def win_figure(wins: pd.DataFrame, shared: pd.DataFrame):
    """Heat map of wins[i, j] / shared[i, j] with the counts written in the cells."""
    k = len(wins)
    fig = new_figure(2.5 + 0.55 * k, 1.8 + 0.45 * k)
    ax = fig.subplots()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = wins.to_numpy(float) / shared.to_numpy(float)
    image = ax.imshow(np.ma.masked_invalid(rate), cmap="RdYlGn", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if i != j and shared.iat[i, j]:
                ax.text(j, i, f"{wins.iat[i, j]}/{shared.iat[i, j]}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(k), wins.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), wins.index, fontsize=8)
    ax.set_xlabel("solver j")
    ax.set_ylabel("solver i")
    ax.set_title("problems on which solver i beats solver j", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.7, label="win rate")
    return fig
