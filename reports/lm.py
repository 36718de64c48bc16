"""Whole-model results, when the results directory has them:

- model evaluations in the store (``wlrbench compress``; ``bench.compression``): rows with ``record``
  "evaluation", one per compressed model (solver spec, budget ρ in ``param_ratio``, allocation strategy in
  ``allocation``) and one for the dense model, with the held-out loss, its bootstrap interval and per-unit losses
  in ``info`` (and the allocation's rank per layer in ``info["allocation"]``); the layer runs they used are runs
  of the store (``record`` "run"), joined through ``info["layers"]``. ``model_table`` is the table (with the mean
  Fisher-weighted and activation errors of the layers), ``objective_agreement`` which of the two layer
  objectives orders the models as their held-out loss does, ``significance`` the paired comparisons of the
  models at each ratio (``problems.lm.bootstrap``: paired bootstrap, Holm's correction over the pairs of one
  ratio), ``strategy_table`` each allocation strategy against uniform at the same budget and solver,
  ``allocation_figure`` the rank per layer of each strategy, ``layer_table`` the per-layer rows;
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
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from problems.diagnostics import spearman
from problems.lm.bootstrap import LEVEL, holm, paired
from problems.lm.models import MODULES
from reports.figures import new_figure

SVD_RISK_COLUMNS = ("problem", "svd_risk", "svd_error_ratio", "loss_increase")
DENSE = "dense"
UNIFORM = "uniform"  # the allocation of every layer at the model's ratio (stores without the column: all of them)


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


def _allocation(evaluation) -> str:
    """The evaluation's allocation strategy ("" for the dense model, uniform when the store predates them)."""
    if evaluation["solver"] == DENSE:
        return ""
    return str(evaluation.get("allocation", "") or UNIFORM)


def model_label(solver: str, allocation: str) -> str:
    """How a compressed model is named in comparisons: its solver spec, with the strategy unless uniform."""
    return solver if allocation in ("", UNIFORM) else f"{solver} ({allocation})"


def model_table(store: pd.DataFrame) -> pd.DataFrame:
    """One row per model, parameter ratio, allocation and solver (dense first, then by ratio and loss): parameters,
    held-out loss with its interval and increase over the dense model, perplexity or retrieval accuracy, and over
    the layers: their number, mean and max relative weighted error, mean activation error (NaN where the layers
    had no input statistics), total solver seconds and stop reasons."""
    e = evaluations(store)
    rows = []
    for _, ev in e.iterrows():
        layers = _layer_runs(store, ev)
        kind = json.loads(ev["info"]).get("kind", "causal")
        row = {"model": ev["model"], "solver": ev["solver"], "param_ratio": ev["param_ratio"],
               "allocation": _allocation(ev), "n_params": int(ev["n_params"]), "eval_loss": ev["eval_loss"],
               "loss_low": ev["eval_loss_low"], "loss_high": ev["eval_loss_high"]}
        if kind == "causal":
            row["perplexity"] = float(np.exp(ev["eval_loss"]))
        else:
            row.update(retrieval_accuracy=ev["eval_accuracy"], accuracy_low=ev["eval_accuracy_low"],
                       accuracy_high=ev["eval_accuracy_high"])
        row.update(n_layers=len(layers), mean_rel_error=layers["rel_error"].mean() if len(layers) else 0.0,
                   max_rel_error=layers["rel_error"].max() if len(layers) else 0.0,
                   mean_activation_error=layers["activation_error"].mean() if len(layers) else 0.0,
                   solve_time=layers["time"].sum(),
                   stop_reasons=", ".join(f"{k}×{v}" for k, v in layers["stop_reason"].value_counts().items()))
        rows.append(row)
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    dense = t[t["solver"] == DENSE].groupby("model")["eval_loss"].first()
    t.insert(8, "Δ loss vs dense", t["eval_loss"] - t["model"].map(dense))
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
    e = e.assign(label=[model_label(r["solver"], _allocation(r)) for _, r in e.iterrows()])
    rows = []
    for (model, ratio), g in e.groupby(["model", "param_ratio"], sort=True):
        units = {r["label"]: json.loads(r["info"])["units"] for _, r in g.iterrows()}
        order = sorted(units, key=lambda s: float(g.loc[g["label"] == s, "eval_loss"].iloc[0]))
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


AGREEMENT_PAIRS = (("weighted ~ loss", "mean_rel_error", "eval_loss"),
                   ("activation ~ loss", "mean_activation_error", "eval_loss"),
                   ("weighted ~ activation", "mean_rel_error", "mean_activation_error"))


def objective_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Which layer objective orders the compressed models as their held-out loss does. Per model, ratio and
    allocation of ``model_table`` whose layers recorded activation errors: the model with the lowest mean
    Fisher-weighted error, the lowest mean activation error and the lowest loss, and the Spearman correlation
    across the models (solver specs) of each objective with the loss and of the two with each other (ρ, p-value;
    exact p up to 8 models, ``problems.diagnostics.spearman``)."""
    t = table[(table["solver"] != DENSE) & np.isfinite(table["mean_activation_error"].to_numpy(float))]
    rows = []
    for (model, ratio, allocation), g in t.groupby(["model", "param_ratio", "allocation"], sort=False):
        row = {"model": model, "param_ratio": ratio, "allocation": allocation, "models": len(g),
               "lowest weighted": g.loc[g["mean_rel_error"].idxmin(), "solver"],
               "lowest activation": g.loc[g["mean_activation_error"].idxmin(), "solver"],
               "lowest loss": g.loc[g["eval_loss"].idxmin(), "solver"]}
        for what, x, y in AGREEMENT_PAIRS:
            rho, p, _ = spearman(g[x], g[y])
            row.update({f"{what} ρ": rho, f"{what} p": p})
        rows.append(row)
    return pd.DataFrame(rows)


STRATEGY_COLUMNS = ["model", "param_ratio", "solver", "allocation", "layer_params", "budget_params", "n_params",
                    "eval_loss", "loss_low", "loss_high", "Δ loss vs uniform", "Δ low", "Δ high", "p-value",
                    "predicted_error"]


def strategy_table(store: pd.DataFrame) -> pd.DataFrame:
    """Allocation strategies compared at one budget: for each model, budget ρ and solver spec evaluated under more
    than one strategy, one row per strategy (uniform first): the parameters its compressed layers spend
    (layer_params, at most the budget's budget_params = Σ ⌊ρ m n/(m+n)⌋ (m+n), so the strategies compare at equal
    parameters to within one rank step per layer), the whole model's n_params, the held-out loss with its
    interval, its paired bootstrap difference from uniform's on the same units (negative: better than uniform)
    with interval and p-value, and the error the allocation predicted from the layers' curves (Σ_i e_i(r_i),
    ``bench.allocation``; NaN when not computed)."""
    e = evaluations(store)
    e = e[e["solver"] != DENSE]
    rows = []
    for (model, ratio, solver), g in e.groupby(["model", "param_ratio", "solver"], sort=True):
        by = {_allocation(r): r for _, r in g.iterrows()}
        if len(by) < 2:
            continue
        base = json.loads(by[UNIFORM]["info"])["units"] if UNIFORM in by else None
        for strategy in sorted(by, key=lambda s: (s != UNIFORM, s)):
            ev = by[strategy]
            info = json.loads(ev["info"])
            alloc = info.get("allocation") or {}
            row = {"model": model, "param_ratio": ratio, "solver": solver, "allocation": strategy,
                   "layer_params": alloc.get("params"), "budget_params": alloc.get("budget_params"),
                   "n_params": int(ev["n_params"]), "eval_loss": ev["eval_loss"], "loss_low": ev["eval_loss_low"],
                   "loss_high": ev["eval_loss_high"],
                   "predicted_error": math.nan if alloc.get("predicted_error") is None else alloc["predicted_error"]}
            units = info["units"]
            if strategy != UNIFORM and base is not None and units["terms"] == base["terms"]:
                d = paired(units["loss"], base["loss"], base["terms"])
                row.update({"Δ loss vs uniform": d["difference"], "Δ low": d["low"], "Δ high": d["high"],
                            "p-value": d["p_value"]})
            rows.append(row)
    t = pd.DataFrame(rows, columns=STRATEGY_COLUMNS)
    return t.sort_values(["model", "param_ratio"], ascending=[True, False], kind="stable").reset_index(drop=True)


def allocation_ranks(store: pd.DataFrame) -> pd.DataFrame:
    """The rank of every layer under each recorded allocation, one row per (model, budget, strategy, layer):
    block, module, shape, rank and the layer's own parameter ratio r(m+n)/(mn). An allocation does not depend
    on the solver, so each (model, budget, strategy) is read from the first of its evaluations; the block and
    module come from the layer runs it used."""
    runs = store[store["final"] & (store["record"] == "run")].drop_duplicates("run_id").set_index("run_id")
    rows, seen = [], set()
    for _, ev in evaluations(store).iterrows():
        info = json.loads(ev["info"])
        alloc = info.get("allocation")
        key = (ev["model"], alloc and alloc["budget"], alloc and alloc["strategy"])
        if not alloc or key in seen:
            continue
        seen.add(key)
        for name, rid in info["layers"].items():
            if rid in runs.index:
                r = runs.loc[rid]
                m, n, rank = int(r["m"]), int(r["n"]), int(alloc["ranks"][name])
                rows.append({"model": ev["model"], "param_ratio": alloc["budget"], "allocation": alloc["strategy"],
                             "name": name, "layer": int(r["layer"]), "module": r["module"], "m": m, "n": n,
                             "rank": rank, "layer_ratio": rank * (m + n) / (m * n)})
    return pd.DataFrame(rows, columns=["model", "param_ratio", "allocation", "name", "layer", "module", "m", "n",
                                       "rank", "layer_ratio"])


def _module_order(module: str) -> tuple:
    return (MODULES.index(module) if module in MODULES else len(MODULES), module)


def allocation_figure(ranks: pd.DataFrame):
    """Rank per layer of each allocation (``allocation_ranks``): one panel per (model, budget) row and strategy
    column, the block on the x axis, one line per module, the layer's parameter ratio r(m+n)/(mn) on the y axis
    (proportional to its rank; uniform is flat at ρ, dashed)."""
    panels = ranks[["model", "param_ratio"]].drop_duplicates().sort_values(["model", "param_ratio"],
                                                                           ascending=[True, False])
    strategies = sorted(ranks["allocation"].unique(), key=lambda s: (s != UNIFORM, s))
    modules = sorted(ranks["module"].unique(), key=_module_order)
    fig = new_figure(4.5 * len(strategies) + 1.5, 3.2 * len(panels))
    axes = fig.subplots(len(panels), len(strategies), squeeze=False, sharey=True)
    for row, (model, ratio) in zip(axes, panels.itertuples(index=False)):
        for ax, strategy in zip(row, strategies):
            g = ranks[(ranks["model"] == model) & (ranks["param_ratio"] == ratio) & (ranks["allocation"] == strategy)]
            for module in modules:
                s = g[g["module"] == module].sort_values("layer")
                if len(s):
                    ax.plot(s["layer"], s["layer_ratio"], marker="o", markersize=3, label=module)
            ax.axhline(ratio, color="k", linestyle="--", linewidth=1)
            ax.set_title(f"{model}, ρ = {ratio:g}: {strategy}", fontsize=10)
            ax.set_xlabel("block")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("layer ratio r(m+n)/(mn)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
    return fig


LAYER_COLUMNS = ["model", "solver", "param_ratio", "problem", "layer", "module", "m", "n", "rank", "rel_error",
                 "activation_error", "objective", "time", "n_iter", "stop_reason", "run_id"]


def layer_table(store: pd.DataFrame) -> pd.DataFrame:
    """The final row of every layer run used by an evaluation (the per-layer results of the models)."""
    e = evaluations(store)
    ids = {rid for info in e["info"] for rid in json.loads(info)["layers"].values()}
    runs = store[store["final"] & store["run_id"].isin(ids)]
    return runs[LAYER_COLUMNS].sort_values(["model", "solver", "param_ratio", "layer", "module"],
                                            kind="stable").reset_index(drop=True)


def compression_figure(table: pd.DataFrame, colours: dict):
    """Held-out loss versus parameter ratio with its bootstrap interval, one line per solver and allocation
    (uniform: circles, the solver's line style; another strategy: squares, dotted) and one panel per model; the
    dense model dashed."""
    models = sorted(table["model"].unique())
    fig = new_figure(6 * len(models) + 2, 4.5)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        g = table[table["model"] == model]
        for (solver, allocation), s in g[g["solver"] != DENSE].groupby(["solver", "allocation"]):
            colour, style = colours.get(solver, ("k", "-"))
            uniform = allocation == UNIFORM
            s = s.sort_values("param_ratio")
            err = np.vstack([s["eval_loss"] - s["loss_low"], s["loss_high"] - s["eval_loss"]])
            ax.errorbar(s["param_ratio"], s["eval_loss"], yerr=err, marker="o" if uniform else "s", color=colour,
                        linestyle=style if uniform else ":", capsize=3, label=model_label(solver, allocation))
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
