"""Compare solvers on one problem from the SAME initial factors: objective versus time, and who first reaches
a target relative to the best value any of them found.

    python -m bench.perf.compare_solvers --family heavy_tailed --m 300 --n 200 --rank 16 \\
        --solvers gd,adam,sgd,adam_sgd,als --time-limit 60
    python -m bench.perf.compare_solvers --npz layer.npz --rank 32 --solvers gd,adam --init random

The initial point (``--init``: "best_closed_form" (default), "random", or any solver name) is computed once and
handed to every iterative solver as a (U, V) pair, so its cost is not in anyone's time; closed-form solvers
(e.g. ``cvx``) run as they are. Solver time is the base class's
clock (objective measurement excluded). The target is f_best (1 + rtol) with f_best the lowest objective any
run reached (when f_best is below 1e-12 Σ W A², an exact fit, the target is rtol · 1e-6 · Σ W A² instead).
For each solver the script reports the first solver time at which its trace is at or below the target; the
winner is the fastest, and every other solver's time is given as a multiple of the winner's.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

import problems
import solvers
from bench.grid import parse_solver_specs
from problems import synthetic
from solvers.base import DeviceProblem
from solvers.device import resolve_device, resolve_dtype
from solvers.initial import initial_factors


def build_problem(args) -> problems.Problem:
    if args.npz:
        return problems.load(args.npz, rank=args.rank)
    return synthetic.make(args.family, m=args.m, n=args.n, rank=args.rank, seed=args.seed, dtype=args.dtype)


def shared_init(problem, init: str, *, seed: int, device, dtype):
    """(U0, V0, seconds): the initial factors every solver starts from, computed once."""
    device = resolve_device(device)
    dp = DeviceProblem.from_problem(problem, device, resolve_dtype(dtype, problem.dtype), seed)
    start = time.perf_counter()
    U, V = initial_factors(init, dp, seed=seed)
    return U, V, time.perf_counter() - start


def target_value(best: float, weighted_norm: float, rtol: float) -> float:
    """f_best (1 + rtol), or rtol · 1e-6 · Σ W A² when f_best is an exact fit (see module docstring)."""
    if best <= 1e-12 * weighted_norm:
        return rtol * 1e-6 * weighted_norm
    return best * (1 + rtol)


def first_below(trace, target: float):
    """The first trace point at or below ``target``, or None."""
    return next((p for p in trace if p.objective <= target), None)


def time_to(trace, target: float) -> float:
    """Solver seconds of the first trace point at or below ``target`` (inf if never)."""
    point = first_below(trace, target)
    return point.seconds if point else math.inf


def solve_from(problem, spec, start, **solve_kw):
    """Run one solver spec ("adam" or a (name, params) pair) from the factors ``start`` = (U0, V0); a closed-form
    solver has no start and runs as it is. ``solve_kw`` go to ``solve`` (seed, time_limit, max_iter, device,
    dtype). Returns the SolveResult (its ``solver`` is the spec's label)."""
    name, params = (spec, {}) if isinstance(spec, str) else spec
    solver = solvers.get(name, **params)
    return solver.solve(problem, init=None if solver.closed_form else start, **solve_kw)


def compare(problem, names, *, init="best_closed_form", rtol=1e-3, seed=0, time_limit=None, max_iter=None,
            device=None, dtype=None) -> dict:
    """Run each solver in ``names`` (strings like "adam" or (name, params) pairs) from one shared start.

    Returns {"init_seconds", "f0", "best", "target", "runs": {label: SolveResult}, "time_to_target":
    {label: seconds}, "winner": label or None, "factors": {label: time / winner's time}}.
    """
    U0, V0, init_seconds = shared_init(problem, init, seed=seed, device=device, dtype=dtype)
    runs = {}
    for spec in names:
        res = solve_from(problem, spec, (U0, V0), seed=seed, time_limit=time_limit, max_iter=max_iter,
                         device=device, dtype=dtype)
        runs[res.solver] = res
    best = min(p.objective for r in runs.values() for p in r.trace if math.isfinite(p.objective))
    target = target_value(best, problem.weighted_norm, rtol)
    reach = {label: time_to(r.trace, target) for label, r in runs.items()}
    finite = {k: v for k, v in reach.items() if math.isfinite(v)}
    winner = min(finite, key=finite.get) if finite else None
    factors = {k: (v / reach[winner] if reach[winner] > 0 else math.inf) for k, v in reach.items()} if winner else {}
    return {"init_seconds": init_seconds, "f0": problem.objective(U0, V0), "best": best, "target": target,
            "runs": runs, "time_to_target": reach, "winner": winner, "factors": factors}


def _rel_at(trace, t: float, weighted_norm: float) -> float:
    """rel_error of the last trace point at or before solver time t."""
    seen = [p.objective for p in trace if p.seconds <= t]
    return (seen[-1] if seen else trace[0].objective) / weighted_norm


def report(problem, out: dict, *, columns: int = 8, file=sys.stdout) -> None:
    """Print the comparison: rel_error at log-spaced solver times, then time to target and the winner."""
    wn = problem.weighted_norm
    runs = out["runs"]
    t_end = max(r.time for r in runs.values())
    t_min = max(min(p.seconds for r in runs.values() for p in r.trace[1:2] or r.trace), 1e-4)
    grid = sorted({t_end * (t_min / t_end) ** (k / (columns - 1)) for k in range(columns)}) if t_end > t_min \
        else [t_end]
    print(f"problem {problem.name} ({problem.shape[0]}×{problem.shape[1]}, rank {problem.rank}); "
          f"shared init rel_error {out['f0'] / wn:.6g} (computed once in {out['init_seconds']:.3g}s, "
          f"not counted)", file=file)
    width = max(len(k) for k in runs) + 2
    print("rel_error at solver time (s):", file=file)
    print(" " * width + "".join(f"{t:>12.3g}" for t in grid) + f"{'final':>12}{'iters':>8}  stop", file=file)
    for label, r in runs.items():
        cells = "".join(f"{_rel_at(r.trace, t, wn):>12.6g}" for t in grid)
        info = {k: v for k, v in r.info.items() if k != "message"}
        extra = f"  {json.dumps(info)}" if info else ""
        print(f"{label:<{width}}{cells}{r.rel_error:>12.6g}{r.n_iter:>8}  {r.stop_reason}{extra}", file=file)
    print(f"best rel_error {out['best'] / wn:.8g}; target rel_error {out['target'] / wn:.8g}", file=file)
    for label, t in sorted(out["time_to_target"].items(), key=lambda kv: kv[1]):
        factor = out["factors"].get(label, math.inf)
        point = first_below(runs[label].trace, out["target"])
        reached = (f"{t:.4g}s, iteration {point.iteration} ({factor:.3g}× the winner's time)" if point
                   else "never")
        print(f"  {label:<{width}} reaches the target at {reached}", file=file)
    if out["winner"]:
        ranked = sorted((v, k) for k, v in out["time_to_target"].items() if math.isfinite(v))
        runner_up = f", {ranked[1][0] / ranked[0][0]:.3g}× faster than {ranked[1][1]}" if len(ranked) > 1 else ""
        print(f"first to the target: {out['winner']}{runner_up}", file=file)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perf.compare_solvers", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--family", default="heavy_tailed", choices=sorted(synthetic.FAMILIES))
    src.add_argument("--npz", help="a problem file (problems.load): arrays A, W, optional rank")
    ap.add_argument("--m", type=int, default=300)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--solvers", default="gd,adam,sgd,adam_sgd",
                    help='solver specs with grids, as for `wlrbench run`, e.g. "adam[lr=[1e-2,3e-2]],als"')
    ap.add_argument("--init", default="best_closed_form", help="best_closed_form, random, or a solver name")
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--time-limit", type=float, default=None, help="solver seconds per run")
    ap.add_argument("--max-iter", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        names = parse_solver_specs(args.solvers)
    except ValueError as exc:
        ap.error(str(exc))
    problem = build_problem(args)
    out = compare(problem, names, init=args.init, rtol=args.rtol, seed=args.seed, time_limit=args.time_limit,
                  max_iter=args.max_iter, device=args.device, dtype=args.dtype)
    report(problem, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
