"""Objective versus time from one shared start: who reaches a target relative to the best value first?

    python -m bench.time_to_target --family heavy_tailed --shape 300x200 --rank 16 --solvers als newton svp

Every iterative solver starts from the same factors (``--init``, computed once, its cost excluded) on the
same problem; closed-form solvers (e.g. ``cvx``) run as they are. Each solver runs ``--repeats`` times and
every trace point keeps its fastest time over the repeats (the runs are deterministic, so the traces agree
point by point; the minimum filters out load from other processes). ``best`` is the lowest final objective
of all solvers; a solver's time to target is the first trace time with f ≤ best·(1 + ``--target``), and the
report gives each as a ratio to the fastest — ratios measured in one run, on one machine.
"""
from __future__ import annotations

import argparse
import math

import torch

import solvers
from problems import synthetic
from solvers.initial import BASELINES


def fastest_trace(solver, problem, repeats: int, **kw):
    """Run ``repeats`` times; return the last result and its trace with each point's minimum time."""
    runs = [solver.solve(problem, **kw) for _ in range(repeats)]
    trace = [(pts[0].iteration, min(p.seconds for p in pts), pts[0].objective)
             for pts in zip(*(r.trace for r in runs))]
    return runs[-1], trace


def time_to(trace, level: float):
    """(iteration, seconds) of the first trace point with objective ≤ level, or None."""
    return next(((it, t) for it, t, f in trace if f <= level), None)


def race(problem, names, *, init: str, target: float, repeats: int, max_iter: int, time_limit: float):
    """One row per solver: name, result, (iteration, seconds) to the target or None, and the best value."""
    start = solvers.get(init).solve(problem)
    out = []
    for name in names:
        solver = solvers.get(name)
        kw = {} if solver.closed_form else dict(init=start, max_iter=max_iter, time_limit=time_limit)
        out.append((name, *fastest_trace(solver, problem, repeats, **kw)))
    best = min(res.objective for _, res, _ in out)
    return [(name, res, time_to(trace, best * (1 + target))) for name, res, trace in out], best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="heavy_tailed", choices=sorted(synthetic.FAMILIES))
    ap.add_argument("--shape", default="300x200", help="m x n, e.g. 300x200")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--solvers", nargs="+", default=["als", "newton", "svp"])
    ap.add_argument("--init", default="best_closed_form", help="a closed-form solver name; default: the best")
    ap.add_argument("--target", type=float, default=1e-3, help="relative gap to the best value")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: least sensitive to load)")
    ap.add_argument("--max-iter", type=int, default=5000)
    ap.add_argument("--time-limit", type=float, default=120.0)
    args = ap.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        report(args)
    finally:
        torch.set_num_threads(threads)


def report(args):
    """Build the problem, run the race and print the table."""
    m, n = (int(x) for x in args.shape.lower().split("x"))
    problem = synthetic.make(args.family, m=m, n=n, rank=args.rank, seed=args.seed)
    init = args.init
    if init == "best_closed_form":
        init = min(BASELINES, key=lambda name: solvers.get(name).solve(problem).objective)
    rows, best = race(problem, args.solvers, init=init, target=args.target, repeats=args.repeats,
                      max_iter=args.max_iter, time_limit=args.time_limit)
    fastest = min((hit[1] for _, _, hit in rows if hit), default=math.nan)
    print(f"{problem.name}  init={init}  best rel_error={best / problem.weighted_norm:.6g}  "
          f"target: within {args.target:g} of best  threads={args.threads}  repeats={args.repeats}")
    print(f"{'solver':10s} {'final rel_error':>15s} {'gap to best':>11s} {'iters':>6s} {'time':>8s} "
          f"{'iter@target':>11s} {'s@target':>9s} {'x fastest':>9s}")
    for name, res, hit in rows:
        at = f"{hit[0]:11d} {hit[1]:9.3f} {hit[1] / fastest:9.1f}" if hit else f"{'never':>11s} {'':>9s} {'':>9s}"
        print(f"{name:10s} {res.rel_error:15.6g} {res.objective / best - 1:11.2e} {res.n_iter:6d} "
              f"{res.time:8.3f} {at}")


if __name__ == "__main__":
    main()
