"""Whole-model results of the real-LM commands, when the results directory has them (interfaces §2):

- ``DIR/compression/*.csv`` (``wlrbench compress --results-dir DIR``): model, solver, param_ratio, n_params,
  eval_loss, mean_rel_error and optional extra metrics; the dense model is the row with solver "dense".
- ``DIR/svd_risk/<suite>.csv`` (``wlrbench svd-risk --results-dir DIR``): per matrix, svd_risk (and its variants
  ``svd_risk_<variant>`` when recorded), the penalty of plain SVD (svd_error_ratio = SVD weighted error / best
  weighted solver's) and loss_increase (NaN when not measured), and the module when the matrix has one. The
  Spearman rank correlation between each variant and each penalty, with its p-value, is recomputed here, over
  all matrices and within each module (module types differ in both risk and penalty, which alone can make a
  statistic correlate across a whole model).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from problems.diagnostics import spearman
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


def risk_penalties(df: pd.DataFrame) -> list[str]:
    """The penalty columns with at least one finite value."""
    return [c for c in ("svd_error_ratio", "loss_increase") if np.isfinite(df[c].to_numpy(float)).any()]


def risk_variants(df: pd.DataFrame) -> list[str]:
    """The statistic's columns: ``svd_risk_<variant>`` for each recorded variant, else ``svd_risk`` alone."""
    return [c for c in df.columns if c.startswith("svd_risk_")] or ["svd_risk"]


TABLE_COLUMNS = ["suite", "variant", "penalty", "Spearman rho", "p-value", "matrices"]


def _correlation_rows(g: pd.DataFrame, **labels) -> list[dict]:
    return [{**labels, "variant": v.removeprefix("svd_risk_") if v != "svd_risk" else "row", "penalty": col,
             **dict(zip(["Spearman rho", "p-value", "matrices"], spearman(g[v], g[col])))}
            for v in risk_variants(g) for col in risk_penalties(g)]


def svd_risk_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per suite (file), variant and penalty: Spearman rho, p-value and the number of matrices."""
    rows = [r for suite, g in df.groupby("source") for r in _correlation_rows(g, suite=suite)]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


MODULE_MIN_MATRICES = 6


def svd_risk_module_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """The same correlations within each module of each suite with at least ``MODULE_MIN_MATRICES`` matrices,
    one row per (suite, module, penalty) with each variant's rho and p-value; None without modules."""
    if "module" not in df or df["module"].isna().all():
        return None
    rows = [r for (suite, module), g in df.dropna(subset=["module"]).groupby(["source", "module"])
            if len(g) >= MODULE_MIN_MATRICES for r in _correlation_rows(g, suite=suite, module=module)]
    if not rows:
        return None
    long = pd.DataFrame(rows)
    wide = long.pivot_table(index=["suite", "module", "penalty", "matrices"], columns="variant",
                            values=["Spearman rho", "p-value"], sort=False)
    wide.columns = [f"{variant} {'ρ' if stat == 'Spearman rho' else 'p'}" for stat, variant in wide.columns]
    order = [f"{v} {s}" for v in dict.fromkeys(long["variant"]) for s in ("ρ", "p")]
    return wide[order].reset_index()


def svd_risk_figure(df: pd.DataFrame):
    """Scatter of each recorded variant (rows) against each measured penalty (columns), one colour per module
    (per suite when the rows have no module), Spearman rho, p-value and n in each panel's title."""
    cols, variants = risk_penalties(df), risk_variants(df)
    colour_by = "module" if "module" in df and df["module"].notna().all() else "source"
    fig = new_figure(5.0 * max(1, len(cols)), 3.8 * len(variants))
    axes = fig.subplots(len(variants), max(1, len(cols)), squeeze=False)
    for row, v in zip(axes, variants):
        for ax, col in zip(row, cols):
            for label, g in df.groupby(colour_by):
                ax.scatter(g[v], g[col], s=12, alpha=0.7, label=label)
            rho, p, n = spearman(df[v], df[col])
            ax.set_xlabel(v)
            ax.set_ylabel(col)
            if v != "svd_risk_log_element" and (df[v] > 0).all():
                ax.set_xscale("log")
            if col == "svd_error_ratio" and (df[col] > 0).all():
                ax.set_yscale("log")
            ax.set_title(f"Spearman ρ = {rho:.3f} (p = {p:.2g}, n = {n})", fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    return fig
