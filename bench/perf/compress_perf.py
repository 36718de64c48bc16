"""Wall time of a whole-model compression through the runner, and where it goes, per layer shape.

    python -m bench.perf.compress_perf                                 # SmolLM2, all 210 block Linears, adam, ρ = 0.5
    python -m bench.perf.compress_perf --solver als --batched --jobs 2
    python -m bench.perf.compress_perf --layers 0,14,29 --modules q,o,gate,down --eval-tokens 512   # a quick subset

Runs ``bench.compression.compress`` (layer runs with the model-scale budget of ``bench.compression``, then the
dense and the compressed model's held-out evaluation) into a fresh store (``--out``: a store of your choice; a
store that already holds the runs is resumed and measures nothing), with the Fisher taken from the cache
(``wlrbench fisher`` first, or it is computed and cached here, outside the timed part). Prints the wall time of
the whole grid and, per layer shape (m×n at rank r): layers, solver seconds (total, median), iterations
(median), stop reasons, and the median solver time in units of one m×n×r float32 GEMM timed in this process
(``bench.perf.throughput.gemm_gflops``), so the numbers compare across machines. The performance target of
docs/compression.md: SmolLM2's 210 Linears at ρ = 0.5 with the default solver and budget in ≤ 20 minutes
wall on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from bench import results
from bench.compression import LAYER_TIME_LIMIT, LAYER_TOL, compress
from bench.evaluation import HeldOut
from bench.perf.throughput import gemm_gflops
from bench.tables import print_table


def shape_table(store) -> list[dict]:
    """Per (m, n, rank) of the layer runs in ``store`` (``bench.results.load`` rows): counts and times."""
    runs = store[store["final"] & (store["record"] == "run")]
    rows = []
    for (m, n, r), g in runs.groupby(["m", "n", "rank"], sort=True):
        gemm = 2.0 * m * n * r / (gemm_gflops(m, n, r) * 1e9)
        rows.append({"shape": f"{m}x{n} r{r}", "layers": len(g), "solver s": g["time"].sum(),
                     "median s": g["time"].median(), "median iters": g["n_iter"].median(),
                     "median GEMM units": g["time"].median() / gemm, "GEMM ms": 1e3 * gemm,
                     "stops": ", ".join(f"{k}×{v}" for k, v in g["stop_reason"].value_counts().items())})
    return rows


def main(argv=None) -> int:
    from problems.lm import EVAL_TEXT, FISHER_TEXT, default_cache_dir, fisher, fisher_tokens, lm_problems, load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--layers", default="all")
    p.add_argument("--modules", default="all")
    p.add_argument("--solver", default="adam", help="solver spec (default adam)")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--batched", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--tol", type=float, default=LAYER_TOL)
    p.add_argument("--time-limit", type=float, default=LAYER_TIME_LIMIT)
    p.add_argument("--eval-tokens", type=int, default=None, help="held-out tokens (default: all of lee)")
    p.add_argument("--tokens", type=int, default=None, help="Fisher tokens (default: the suites' 16000)")
    p.add_argument("--out", default=None, help="the store (default: a fresh temporary folder)")
    args = p.parse_args(argv)

    cache = default_cache_dir()
    lm = load_model(args.model, cache)
    names = lm.select(args.layers, args.modules)
    problems = lm_problems(lm, names, fisher(lm, names, text=FISHER_TEXT, tokens=args.tokens or fisher_tokens(),
                                             cache_dir=cache), text=FISHER_TEXT)
    out = args.out or tempfile.mkdtemp(prefix="wlrbench-compress-perf-")
    start = time.perf_counter()
    store = compress(problems, [args.solver], [args.ratio], held_out=HeldOut(args.model, str(cache), EVAL_TEXT,
                                                                           args.eval_tokens),
                     model_name=lm.name, out=out, tol=args.tol, time_limit=args.time_limit, device=args.device,
                     jobs=args.jobs, batched=args.batched)
    wall = time.perf_counter() - start
    runs = store[store["final"] & (store["record"] == "run")]
    evals = store[store["final"] & (store["record"] == "evaluation")]
    print_table(shape_table(store), "{:.4g}")
    print_table([{"model": r.solver, "eval_loss": r.eval_loss, "low": r.eval_loss_low, "high": r.eval_loss_high,
                  "eval wall s": r.wall_time} for r in evals.itertuples()], "{:.4g}")
    print(json.dumps({"layers": len(runs), "solver": args.solver, "ratio": args.ratio, "jobs": args.jobs,
                      "batched": args.batched, "wall_s": round(wall, 1),
                      "layer_solver_s": round(float(runs["time"].sum()), 1),
                      "eval_wall_s": round(float(evals["wall_time"].sum()), 1),
                      "stop_reasons": runs["stop_reason"].value_counts().to_dict(),
                      "median_iterations": float(np.median(runs["n_iter"])), "store": str(out),
                      "factors_MB": round(sum(p.stat().st_size for p in (results.factors_path(out, "x").parent)
                                              .glob("*.safetensors")) / 2**20, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
