"""A hand-made results store (interfaces §1 columns) whose profile values are known by construction."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import ROW_DEFAULTS

ENV = {"env_python": "3.11.2", "env_torch": "2.13.0", "env_numpy": "2.0", "env_wlrbench": "0.1.0",
       "env_git": "abc1234", "env_hostname": "testhost", "env_platform": "Linux", "env_threads": 1,
       "started_at": "2026-01-01T00:00:00Z"}
CALIBRATION = {"calib_before": 0.02, "calib_after": 0.02, "calib_gflops": 50.0, "load_before": 0.5,
               "load_after": 0.5}  # and cpu_time = wall_time: one busy core, no contention


def run_frame(problem, solver, trace, *, seed=0, wn, f_star=math.nan, stop="converged", m=20, n=10, rank=2,
              family="", message="", device="cpu", dtype="float64", time_limit=math.nan, info=None, calib=None):
    """The rows of one run: ``trace`` is a list of (iteration, time, objective); ``calib`` overrides
    calibration columns."""
    run_id = f"{problem}-{solver}-{seed}-{device}-{dtype}"
    rows = []
    for k, (it, t, f) in enumerate(trace):
        rows.append({**ROW_DEFAULTS, "run_id": run_id, "problem": problem, "family": family, "m": m, "n": n, "rank": rank,
                     "param_ratio": rank * (m + n) / (m * n), "solver": solver, "solver_name": solver.split("[")[0],
                     "params": "{}", "seed": seed, "device": device, "dtype": dtype, "max_iter": -1,
                     "time_limit": time_limit, "iteration": it, "time": t, "objective": f, "rel_error": f / wn,
                     "f_star": f_star, "rel_f_star": f_star / wn, "weighted_norm": wn,
                     "final": k == len(trace) - 1, "n_iter": trace[-1][0], "stop_reason": stop,
                     "message": message, "wall_time": trace[-1][1] + 0.1, "info": json.dumps(info or {}), **ENV,
                     **CALIBRATION, "cpu_time": trace[-1][1] + 0.1,
                     **(calib or {})})
    return pd.DataFrame(rows)


# P1: f* = 1, ΣWA² = 101, so s = (f − 1)/100.   P2: f* unknown, best found 2, ΣWA² = 10, so s = (f − 2)/8.
KNOWN_RUNS = [
    ("P1", "a", 0, [(0, 0.5, 51.0), (1, 1.0, 6.0), (2, 2.0, 1.01), (3, 4.0, 1 + 1e-5)], dict(wn=101.0, f_star=1.0)),
    ("P1", "b", 0, [(0, 0.25, 6.0), (1, 8.0, 1.01)], dict(wn=101.0, f_star=1.0, stop="max_iter")),
    ("P1", "c", 0, [(0, 1.0, 6.0), (1, 2.0, 1.01)], dict(wn=101.0, f_star=1.0)),
    ("P1", "c", 1, [(0, 3.0, 6.0)], dict(wn=101.0, f_star=1.0, stop="time_limit")),
    ("P2", "a", 0, [(0, 1.0, 6.0), (1, 3.0, 2.0)], dict(wn=10.0)),
    ("P2", "b", 0, [(0, 0.5, 2.4), (1, 1.0, 2.08)], dict(wn=10.0, stop="max_iter")),
]
# Times to s ≤ τ (median over seeds; inf = not reached); c did not run on P2.
KNOWN_TIMES = {
    0.1: {"P1": {"a": 1.0, "b": 0.25, "c": 2.0}, "P2": {"a": 3.0, "b": 0.5}},
    1e-3: {"P1": {"a": 2.0, "b": 8.0, "c": math.inf}, "P2": {"a": 3.0, "b": math.inf}},
    1e-6: {"P1": {"a": 4.0, "b": math.inf, "c": math.inf}, "P2": {"a": 3.0, "b": math.inf}},
}


def write_store(root: Path, runs=KNOWN_RUNS) -> Path:
    """Write one parquet file per run under ``root/runs`` (the §1 layout); return ``root``."""
    (root / "runs").mkdir(parents=True, exist_ok=True)
    for problem, solver, seed, trace, kw in runs:
        frame = run_frame(problem, solver, trace, seed=seed, **kw)
        frame.to_parquet(root / "runs" / f"{frame['run_id'].iat[0]}.parquet", index=False)
    return root


# f* = 1 and Σ W A² = 101 on every problem, so s = (f − 1)/100: f = 1.001 is s = 1e-5 (target 1e-4 reached),
# f = 1.5 is s = 5e-3 (not reached). Every run has a time limit of 2 s: a target not reached counts 4 s.
HIT, MISS, START = 1.001, 1.5, 51.0
KW = dict(wn=101.0, f_star=1.0, time_limit=2.0, stop="time_limit")
VERDICT_RUNS = [  # a store whose verdict is known (tests/test_verdict.py)
    ("P1", "fast", 0, [(0, 0.1, START), (1, 0.5, HIT)], KW),
    ("P1", "fast", 1, [(0, 0.1, START), (1, 0.7, HIT)], KW),  # median over the seeds: 0.6 s
    ("P2", "fast", 0, [(0, 0.1, START), (1, 1.0, HIT)], KW),
    ("P3", "fast", 0, [(0, 0.1, START), (1, 0.2, HIT)], KW),
    ("P1", "adam_sgd", 0, [(0, 0.1, START), (1, 1.5, HIT)], KW),
    ("P2", "adam_sgd", 0, [(0, 0.1, START), (1, 2.0, MISS)], KW),
    ("P3", "adam_sgd", 0, [(0, 0.1, START), (1, 0.9, HIT)], KW),
    ("P1", "never", 0, [(0, 0.1, START), (1, 2.0, MISS)], KW),
    ("P2", "never", 0, [(0, 0.1, START), (1, 2.0, MISS)], KW),  # and never ran on P3: penalty there too
    ("P1", "svd", 0, [(0, 0.001, 2.0)], dict(KW, stop="closed_form")),  # s = 0.01
    ("P2", "svd", 0, [(0, 0.001, 3.0)], dict(KW, stop="closed_form")),  # s = 0.02
    ("P3", "svd", 0, [(0, 0.001, 1.5)], dict(KW, stop="closed_form")),  # s = 0.005
]


def evaluation_frame(model, solver, ratio, unit_means, *, n_params, layers=None, terms=127):
    """The row of one model evaluation (record "evaluation") whose held-out units have mean losses ``unit_means``
    (each unit ``terms`` predicted tokens); ``layers``: Linear name → the run id it used."""
    from problems.lm.bootstrap import interval

    sums = np.asarray(unit_means, float) * terms
    counts = np.full(len(sums), float(terms))
    loss, low, high = interval(sums, counts)
    info = {"layers": layers or {}, "kind": "causal",
            "units": {"loss": sums.tolist(), "terms": counts.tolist(), "hits": [0.0] * len(sums)}}
    row = {**ROW_DEFAULTS, "run_id": f"eval-{model}-{solver}-{ratio}", "problem": model, "family": "", "m": 0, "n": 0, "rank": 0,
           "param_ratio": ratio, "solver": solver, "solver_name": solver.split("[")[0], "params": "{}", "seed": 0,
           "device": "cpu", "dtype": "float32", "max_iter": -1, "time_limit": math.nan, "iteration": 0, "time": 1.0,
           "objective": math.nan, "rel_error": math.nan, "f_star": math.nan, "rel_f_star": math.nan,
           "weighted_norm": math.nan, "final": True, "n_iter": 0, "stop_reason": "evaluated", "message": "",
           "wall_time": 1.5, "info": json.dumps(info), **ENV, "record": "evaluation", "model": model, "layer": -1,
           "module": "", "tol": math.nan, "n_params": n_params, "eval_loss": loss, "eval_loss_low": low,
           "eval_loss_high": high, "eval_accuracy": math.nan, "eval_accuracy_low": math.nan,
           "eval_accuracy_high": math.nan}
    return pd.DataFrame([row])


def write_evaluations(root: Path, frames) -> Path:
    """Write evaluation rows (``evaluation_frame``) into the store at ``root``."""
    (root / "runs").mkdir(parents=True, exist_ok=True)
    for frame in frames:
        frame.to_parquet(root / "runs" / f"{frame['run_id'].iat[0]}.parquet", index=False)
    return root
