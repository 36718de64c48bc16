"""The results store as the report sees it: one row per trace point, plus per-problem reference values.

Every comparison is made on a *problem instance* (a problem at one rank) between *configurations* (a solver
label, suffixed with its device/dtype when the store holds several), with the seeds as repetitions.

Reference value f_ref of an instance: the optimum f* when the store knows it, else the best objective that any
run reached (``f_ref_kind`` says which). Relative suboptimality of a value f:

    s(f) = (f − f_ref) / (Σ W A² − f_ref)

i.e. the Moré–Wild convergence test f(x₀) − f(x) ≥ (1 − τ)(f(x₀) − f_ref) with the zero matrix (f = Σ W A²) as
the common start of every solver: s = 1 for the zero matrix, 0 at the reference, and it is defined even when
f* = 0 (planted problems), where it equals the relative error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TARGETS = (1e-2, 1e-4, 1e-6)  # relative suboptimality levels of time to target (1e-4: the verdict's)


SECTIONED_LAYERS = 24  # beyond this many layer instances of a compressed model, no per-instance sections


def load(results_dir) -> pd.DataFrame:
    """The store's rows (``bench.results.load``); a clear error when the directory holds no runs."""
    from bench import results

    df = results.load(results_dir)
    if df.empty or (df["record"] == "evaluation").all():
        raise ValueError(f"no runs in {Path(results_dir) / results.RUNS}: "
                         f"run `wlrbench run ... --out {results_dir}` first")
    return df


def solves(store: pd.DataFrame) -> pd.DataFrame:
    """The solver runs of the store, without the model evaluations (``record`` "evaluation")."""
    return store[store["record"] != "evaluation"].reset_index(drop=True)


def sectioned(refs: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """The instances that get a section of their own: all, except the layers of a compressed model when there
    are more than ``SECTIONED_LAYERS`` of them (a whole model's hundreds of layers are summarised by the
    profiles and the model section instead)."""
    layers = set(rows.loc[rows["model"].fillna("") != "", "instance"])
    if len(layers) <= SECTIONED_LAYERS:
        return list(refs.index)
    return [inst for inst in refs.index if inst not in layers]


def _instance_labels(df: pd.DataFrame) -> pd.Series:
    """The problem name, with ' r=K' appended for problems that the store holds at several ranks."""
    ranks = df.groupby("problem")["rank"].transform("nunique")
    label = df["problem"].astype(str)
    return label.where(ranks <= 1, label + " r=" + df["rank"].astype(str))


def _config_labels(df: pd.DataFrame) -> pd.Series:
    """The solver label, with '@device/dtype' appended when some solver ran one instance on several devices
    or dtypes (then they are different configurations; otherwise the device and dtype go with the problem,
    e.g. float32 LM matrices next to float64 synthetic ones, and the solver stays one configuration)."""
    label = df["solver"].astype(str)
    combos = df.groupby(["instance", "solver"])[["device", "dtype"]].nunique()
    if (combos.max(axis=1) <= 1).all():
        return label
    return label + "@" + df["device"].astype(str) + "/" + df["dtype"].astype(str)


def references(df: pd.DataFrame) -> pd.DataFrame:
    """One row per instance: problem, rank, m, n, weighted_norm, f_ref and f_ref_kind ('f*' or 'best found')."""
    finite = df[np.isfinite(df["objective"])]
    rows = []
    for inst, g in df.groupby("instance", sort=True):
        f_star = g["f_star"].dropna()
        best = finite.loc[finite["instance"] == inst, "objective"]
        if len(f_star):
            f_ref, kind = float(f_star.iloc[0]), "f*"
        elif len(best):
            f_ref, kind = float(best.min()), "best found"
        else:
            f_ref, kind = float("nan"), "none (no finite objective)"
        first = g.iloc[0]
        rows.append({"instance": inst, "problem": first["problem"], "family": first["family"],
                     "m": int(first["m"]), "n": int(first["n"]), "rank": int(first["rank"]),
                     "weighted_norm": float(first["weighted_norm"]), "f_ref": f_ref, "f_ref_kind": kind})
    return pd.DataFrame(rows).set_index("instance")


def relative_suboptimality(f, f_ref, weighted_norm):
    """s(f) = (f − f_ref)/(Σ W A² − f_ref); the denominator falls back to Σ W A² if f_ref ≥ Σ W A²."""
    span = np.where(weighted_norm - f_ref > 0, weighted_norm - f_ref, weighted_norm)
    return (np.asarray(f, dtype=float) - f_ref) / span


def prepare(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add ``instance``, ``config``, ``f_ref`` and ``subopt`` to the rows; return (rows, references)."""
    df = df.copy()
    df["instance"] = _instance_labels(df)
    df["config"] = _config_labels(df)
    refs = references(df)
    df["f_ref"] = df["instance"].map(refs["f_ref"])
    df["subopt"] = relative_suboptimality(df["objective"], df["f_ref"], df["weighted_norm"])
    df = df.sort_values(["instance", "config", "run_id", "iteration"], kind="stable").reset_index(drop=True)
    return df, refs


def runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run (its final trace point) with ``best_objective`` and ``best_subopt`` over its trace."""
    best = df.groupby("run_id").agg(best_objective=("objective", "min"), best_subopt=("subopt", "min"))
    final = df[df["final"]].drop_duplicates("run_id", keep="last").set_index("run_id")
    return final.join(best).reset_index()
