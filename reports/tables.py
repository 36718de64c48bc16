"""Tables of the report (pandas): the per-problem summary, the problem list and the recorded environment,
plus a dependency-free Markdown renderer for summary.md."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd


def _stop_counts(reasons: pd.Series) -> str:
    counts = reasons.value_counts()
    return ", ".join(f"{r}×{c}" if len(reasons) > 1 else str(r) for r, c in counts.items())


MESSAGE_CHARS = 160  # the store keeps the whole message; a table cell shows its start


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"


def _nanmedian(values) -> float:
    """The median of the non-NaN values, NaN when none is finite (and without numpy's all-NaN warning)."""
    x = np.asarray(values, dtype=float)
    return float(np.nanmedian(x)) if np.isfinite(x).any() else np.nan


def info_text(info: str) -> str:
    """A run's ``info`` JSON as short ``key=value`` pairs (the message is shown on its own)."""
    try:
        data = json.loads(info or "{}")
    except ValueError:
        return _shorten(str(info))
    return _shorten(", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in data.items()
                              if k != "message"))


def final_table(run_rows: pd.DataFrame, order: list) -> pd.DataFrame:
    """One row per configuration of one instance (``run_rows`` from ``reports.data.runs``) in ``order``:
    medians over its runs of the best objective, relative error and gap to f_ref, final solver time and
    iterations; stop reasons with counts; the runs' distinct ``info``; the first non-empty message; and, for
    problems carrying input statistics, the median activation error ‖(A − U Vᵀ)X‖²/‖AX‖² of the returned
    factors."""
    with_inputs = "activation_error" in run_rows and np.isfinite(run_rows["activation_error"].to_numpy(float)).any()
    rows = []
    for config, g in sorted(run_rows.groupby("config"), key=lambda item: order.index(item[0])):
        wn = g["weighted_norm"].to_numpy(float)
        messages = [m for m in g["message"].astype(str) if m]
        rows.append({"solver": config, "runs": len(g),
                     "best objective": g["best_objective"].median(),
                     "rel. error": _nanmedian(g["best_objective"] / wn),
                     "gap to f_ref": g["best_subopt"].median(),
                     "time [s]": g["time"].median(), "iterations": g["n_iter"].median(),
                     "stop reason": _stop_counts(g["stop_reason"]),
                     "info": "; ".join(dict.fromkeys(t for t in map(info_text, g["info"].astype(str)) if t)),
                     "message": _shorten(messages[0]) if messages else ""})
        if with_inputs:
            rows[-1]["activation error"] = _nanmedian(g["activation_error"])
    return pd.DataFrame(rows)


def problems_table(refs: pd.DataFrame, run_rows: pd.DataFrame) -> pd.DataFrame:
    """The instances: shape, rank, param ratio, Σ W A², f_ref and where it comes from, runs."""
    counts = run_rows.groupby("instance").size()
    t = refs.reset_index()[["instance", "family", "m", "n", "rank", "weighted_norm", "f_ref", "f_ref_kind"]]
    t["param ratio"] = t["rank"] * (t["m"] + t["n"]) / (t["m"] * t["n"])
    t["runs"] = t["instance"].map(counts).fillna(0).astype(int)
    return t.rename(columns={"weighted_norm": "ΣWA²", "f_ref_kind": "f_ref is"})


ENV_COLUMNS = ("env_wlrbench", "env_git", "env_python", "env_torch", "env_numpy", "env_platform", "env_hostname",
               "env_threads", "device", "dtype")


def environment_table(run_rows: pd.DataFrame) -> pd.DataFrame:
    """Each recorded environment field with its distinct values (and how many runs had each), and the span
    of start times."""
    rows = []
    for col in ENV_COLUMNS:
        if col in run_rows:
            counts = run_rows[col].astype(str).value_counts()
            value = ", ".join(f"{v} ({c} runs)" if len(counts) > 1 else v for v, c in counts.items())
            rows.append({"field": col.removeprefix("env_"), "value": value})
    if "started_at" in run_rows and len(run_rows):
        started = run_rows["started_at"].astype(str)
        rows.append({"field": "runs started", "value": f"{started.min()} … {started.max()}"})
    return pd.DataFrame(rows, columns=["field", "value"])


def fmt(value) -> str:
    """Numbers to short text: 4 significant digits, integers as such, inf as 'not reached', NaN as '—'."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "not reached" if value > 0 else "-inf"
        return str(int(value)) if value.is_integer() and abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (values through ``fmt``; '|' escaped)."""
    def cell(v):
        return fmt(v).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])
