"""Whole-model results, when the results directory has them:

- model evaluations in the store (``wlrbench compress``; ``bench.compression``): rows with ``record``
  "evaluation", one per compressed model (solver spec, parameter ratio) and one for the dense model, with the
  held-out loss, its bootstrap interval and per-unit losses in ``info``; the layer runs they used are runs of
  the store (``record`` "run"), joined through ``info["layers"]``. ``model_table`` is the table, ``significance``
  the paired comparisons of the models at each ratio (``problems.lm.bootstrap``: paired bootstrap, Holm's
  correction over the pairs of one ratio), ``layer_table`` the per-layer rows;
- ``DIR/svd_risk/<suite>.csv`` (``wlrbench svd-risk --results-dir DIR``): per matrix, svd_risk (and its variants
  ``svd_risk_<variant>`` when recorded), the penalty of plain SVD (svd_error_ratio = SVD weighted error / best
  weighted solver's) and loss_increase (NaN when not measured), and the module when the matrix has one. The
  Spearman rank correlation between each variant and each penalty, with its p-value, is recomputed here, over
  all matrices and within each module (module types differ in both risk and penalty, which alone can make a
  statistic correlate across a whole model).
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from problems.diagnostics import spearman
from problems.lm.bootstrap import LEVEL, holm, paired
from reports.figures import new_figure

SVD_RISK_COLUMNS = ("problem", "svd_risk", "svd_error_ratio", "loss_increase")
DENSE = "dense"


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


def svd_risk(results_dir) -> pd.DataFrame | None:
    return _read_csvs(Path(results_dir) / "svd_risk", SVD_RISK_COLUMNS)


def evaluations(store: pd.DataFrame) -> pd.DataFrame:
    """The stored model evaluations that produced metrics (``bench.results.load`` rows), one per model."""
    if "record" not in store:
        return store.iloc[:0]
    e = store[(store["record"] == "evaluation") & store["final"] & (store["stop_reason"] == "evaluated")]
    return e.reset_index(drop=True)


def _layer_runs(store: pd.DataFrame, evaluation) -> pd.DataFrame:
    ids = set(json.loads(evaluation["info"])["layers"].values())
    return store[store["final"] & store["run_id"].isin(ids)]


def model_table(store: pd.DataFrame) -> pd.DataFrame:
    """One row per model, parameter ratio and solver (dense first, then by ratio and loss): parameters, held-out
    loss with its interval and increase over the dense model, perplexity or retrieval accuracy, and over the
    layers: their number, mean and max relative weighted error, total solver seconds and stop reasons."""
    e = evaluations(store)
    rows = []
    for _, ev in e.iterrows():
        layers = _layer_runs(store, ev)
        kind = json.loads(ev["info"]).get("kind", "causal")
        row = {"model": ev["model"], "solver": ev["solver"], "param_ratio": ev["param_ratio"],
               "n_params": int(ev["n_params"]), "eval_loss": ev["eval_loss"], "loss_low": ev["eval_loss_low"],
               "loss_high": ev["eval_loss_high"]}
        if kind == "causal":
            row["perplexity"] = float(np.exp(ev["eval_loss"]))
        else:
            row.update(retrieval_accuracy=ev["eval_accuracy"], accuracy_low=ev["eval_accuracy_low"],
                       accuracy_high=ev["eval_accuracy_high"])
        row.update(n_layers=len(layers), mean_rel_error=layers["rel_error"].mean() if len(layers) else 0.0,
                   max_rel_error=layers["rel_error"].max() if len(layers) else 0.0,
                   solve_time=layers["time"].sum(),
                   stop_reasons=", ".join(f"{k}×{v}" for k, v in layers["stop_reason"].value_counts().items()))
        rows.append(row)
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    dense = t[t["solver"] == DENSE].groupby("model")["eval_loss"].first()
    t.insert(7, "Δ loss vs dense", t["eval_loss"] - t["model"].map(dense))
    t["order"] = (t["solver"] != DENSE).astype(int)
    t = t.sort_values(["model", "order", "param_ratio", "eval_loss"], ascending=[True, True, False, True],
                      kind="stable").drop(columns="order")
    return t.reset_index(drop=True)


def significance(store: pd.DataFrame) -> pd.DataFrame:
    """Every pair of models compressed at the same ratio, compared paired on the same held-out units: the
    loss difference (worse − better, ≥ 0), its bootstrap interval, the p-value and Holm's adjusted p-value over
    the pairs of that model and ratio, and whether the difference is significant at 1 − LEVEL."""
    e = evaluations(store)
    e = e[e["solver"] != DENSE]
    rows = []
    for (model, ratio), g in e.groupby(["model", "param_ratio"], sort=True):
        units = {r["solver"]: json.loads(r["info"])["units"] for _, r in g.iterrows()}
        order = sorted(units, key=lambda s: float(g.loc[g["solver"] == s, "eval_loss"].iloc[0]))
        pairs = []
        for a, b in itertools.combinations(order, 2):
            if units[a]["terms"] != units[b]["terms"]:
                continue  # evaluated on different held-out units: no paired comparison
            res = paired(units[b]["loss"], units[a]["loss"], units[a]["terms"])
            pairs.append({"model": model, "param_ratio": ratio, "better": a, "worse": b,
                          "Δ loss": res["difference"], "Δ low": res["low"], "Δ high": res["high"],
                          "p-value": res["p_value"]})
        adjusted = holm([p["p-value"] for p in pairs]) if pairs else []
        for p, adj in zip(pairs, adjusted):
            rows.append({**p, "Holm p": float(adj), "significant": bool(adj <= 1 - LEVEL)})
    columns = ["model", "param_ratio", "better", "worse", "Δ loss", "Δ low", "Δ high", "p-value", "Holm p",
               "significant"]
    return pd.DataFrame(rows, columns=columns).sort_values(["model", "param_ratio"], ascending=[True, False],
                                                           kind="stable").reset_index(drop=True)


LAYER_COLUMNS = ["model", "solver", "param_ratio", "problem", "layer", "module", "m", "n", "rank", "rel_error",
                 "objective", "time", "n_iter", "stop_reason", "run_id"]


def layer_table(store: pd.DataFrame) -> pd.DataFrame:
    """The final row of every layer run used by an evaluation (the per-layer results of the models)."""
    e = evaluations(store)
    ids = {rid for info in e["info"] for rid in json.loads(info)["layers"].values()}
    runs = store[store["final"] & store["run_id"].isin(ids)]
    return runs[LAYER_COLUMNS].sort_values(["model", "solver", "param_ratio", "layer", "module"],
                                            kind="stable").reset_index(drop=True)


def compression_figure(table: pd.DataFrame, colours: dict):
    """Held-out loss versus parameter ratio with its bootstrap interval, one line per solver and one panel per
    model; the dense model dashed."""
    models = sorted(table["model"].unique())
    fig = new_figure(6 * len(models) + 2, 4.5)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        g = table[table["model"] == model]
        for solver, s in g[g["solver"] != DENSE].groupby("solver"):
            colour, style = colours.get(solver, ("k", "-"))
            s = s.sort_values("param_ratio")
            err = np.vstack([s["eval_loss"] - s["loss_low"], s["loss_high"] - s["eval_loss"]])
            ax.errorbar(s["param_ratio"], s["eval_loss"], yerr=err, marker="o", color=colour, linestyle=style,
                        capsize=3, label=solver)
        for loss in g.loc[g["solver"] == DENSE, "eval_loss"].head(1):
            ax.axhline(loss, color="k", linestyle="--", linewidth=1, label=DENSE)
        ax.set_xlabel("parameter ratio ρ = r(m+n)/(mn)")
        ax.set_ylabel("held-out loss (95 % bootstrap interval)")
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
