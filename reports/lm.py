"""Whole-model results of the real-LM commands, when the results directory has them (interfaces §2):

- ``DIR/compression/*.csv`` (``wlrbench compress --results-dir DIR``): model, solver, param_ratio, n_params,
  eval_loss, mean_rel_error and optional extra metrics; the dense model is the row with solver "dense".
- ``DIR/svd_risk/<suite>.csv`` (``wlrbench svd-risk --results-dir DIR``): per matrix, svd_risk, the penalty of
  plain SVD (svd_error_ratio = SVD weighted error / best weighted solver's) and loss_increase (NaN when not
  measured). The Spearman rank correlation between risk and penalty is recomputed here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reports.figures import new_figure

COMPRESSION_COLUMNS = ("model", "solver", "param_ratio", "n_params", "eval_loss", "mean_rel_error")
SVD_RISK_COLUMNS = ("problem", "svd_risk", "svd_error_ratio", "loss_increase")


def _read_csvs(folder: Path, required) -> pd.DataFrame | None:
    files = sorted(folder.glob("*.csv"))
    if not files:
        return None
    frames = []
    for f in files:
        df = pd.read_csv(f)
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise ValueError(f"{f} lacks column(s) {', '.join(missing)}")
        frames.append(df.assign(source=f.stem))
    return pd.concat(frames, ignore_index=True)


def compression(results_dir) -> pd.DataFrame | None:
    return _read_csvs(Path(results_dir) / "compression", COMPRESSION_COLUMNS)


def svd_risk(results_dir) -> pd.DataFrame | None:
    return _read_csvs(Path(results_dir) / "svd_risk", SVD_RISK_COLUMNS)


def compression_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model, param ratio and solver (dense first): the recorded metrics and the eval-loss
    increase over the dense model."""
    dense = df[df["solver"] == "dense"].groupby("model")["eval_loss"].first()
    extra = [c for c in df.columns if c not in COMPRESSION_COLUMNS and c != "source"]
    t = df[[*COMPRESSION_COLUMNS, *extra]].copy()
    t["Δ loss vs dense"] = t["eval_loss"] - t["model"].map(dense)
    t["order"] = (t["solver"] != "dense").astype(int)
    t = t.sort_values(["model", "order", "param_ratio", "eval_loss"], kind="stable").drop(columns="order")
    return t.reset_index(drop=True)


def compression_figure(df: pd.DataFrame, colours: dict):
    """Eval loss versus parameter ratio, one line per solver and one panel per model; dense dashed."""
    models = sorted(df["model"].unique())
    fig = new_figure(6 * len(models) + 2, 4.5)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        g = df[df["model"] == model]
        for solver, s in g[g["solver"] != "dense"].groupby("solver"):
            colour, style = colours.get(solver, ("k", "-"))
            s = s.sort_values("param_ratio")
            ax.plot(s["param_ratio"], s["eval_loss"], marker="o", color=colour, linestyle=style, label=solver)
        for loss in g.loc[g["solver"] == "dense", "eval_loss"].head(1):
            ax.axhline(loss, color="k", linestyle="--", linewidth=1, label="dense")
        ax.set_xlabel("parameter ratio ρ = r(m+n)/(mn)")
        ax.set_ylabel("eval loss")
        ax.set_title(model, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def spearman(x, y) -> tuple[float, float, int]:
    """(rho, p-value, n) of the Spearman rank correlation over the pairs where both are finite."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan"), float("nan"), int(ok.sum())
    res = spearmanr(x[ok], y[ok])
    return float(res.statistic), float(res.pvalue), int(ok.sum())


def risk_penalties(df: pd.DataFrame) -> list[str]:
    """The penalty columns with at least one finite value."""
    return [c for c in ("svd_error_ratio", "loss_increase") if np.isfinite(df[c].to_numpy(float)).any()]


def svd_risk_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per suite (file) and penalty: Spearman rho, p-value and the number of matrices."""
    rows = []
    for suite, g in df.groupby("source"):
        for col in risk_penalties(g):
            rho, p, n = spearman(g["svd_risk"], g[col])
            rows.append({"suite": suite, "penalty": col, "Spearman rho": rho, "p-value": p, "matrices": n})
    return pd.DataFrame(rows, columns=["suite", "penalty", "Spearman rho", "p-value", "matrices"])


def svd_risk_figure(df: pd.DataFrame):
    """Scatter of svd_risk against each measured penalty, one colour per suite, rho in the title."""
    cols = risk_penalties(df)
    fig = new_figure(5.5 * max(1, len(cols)), 4.5)
    axes = fig.subplots(1, max(1, len(cols)), squeeze=False)[0]
    for ax, col in zip(axes, cols):
        for suite, g in df.groupby("source"):
            ax.scatter(g["svd_risk"], g[col], s=14, alpha=0.7, label=suite)
        rho, p, n = spearman(df["svd_risk"], df[col])
        ax.set_xlabel("svd_risk")
        ax.set_ylabel(col)
        if col == "svd_error_ratio" and (df[col] > 0).all():
            ax.set_yscale("log")
        ax.set_title(f"Spearman ρ = {rho:.3f} (p = {p:.2g}, n = {n})", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return fig
