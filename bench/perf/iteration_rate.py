"""An iteration's achieved GFLOP/s against the same-shape GEMM's, both timed in turns in one process.

    python -m bench.perf.iteration_rate --solvers adam --problems smollm2.0.q,smollm2.0.gate --repeats 5

For each real matrix (``solver_race.load_problems``: names or patterns) and solver, ``--repeats`` turns of
(1) a block of GEMMs of the solver's declared reference shape (``Solver.gemm_shape``: for the factored
first-order solvers the (m×n)·(n×r) product), about as long as (2), and (2) ``--iters`` iterations of the solver
in float32 from the best closed form (computed once, not timed). An iteration's time is the solver's clock over
the iterations (``SolveResult.time`` minus the start, the objective's measurement excluded) over their number;
its GFLOP/s is the solver's FLOP model (``Solver.flops``) over that time; the ratio to the GEMM's GFLOP/s is
reported per turn, median and min–max. Timing the GEMM as a block that lasts as long as the solver's turn lets
load on the machine weigh on both alike.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

import solvers
from bench.perf.compare_solvers import shared_init
from bench.perf.solver_race import load_problems
from bench.perf.throughput import iteration_model, product_seconds
from bench.tables import format_table
from solvers.device import resolve_device


def rate_rows(problem, name: str, *, iters: int, repeats: int, device) -> dict:
    """Median and spread over ``repeats`` turns of the iteration's GFLOP/s over the same-shape GEMM's."""
    model = iteration_model(name)
    if model is None:
        raise ValueError(f"solver {name!r} declares no FLOP model (Solver.flops)")
    flops, gemm_shape = model
    (m, n), r = problem.shape, problem.rank
    start = shared_init(problem, "best_closed_form", seed=0, device=device, dtype=torch.float32)[:2]
    solver = solvers.get(name)
    solver.solve(problem, init=start, max_iter=2, tol=0.0, device=device, dtype=torch.float32)  # warm-up
    ratios, iteration_gflops, gemm = [], [], []
    for _ in range(repeats):
        res = solver.solve(problem, init=start, max_iter=iters, tol=0.0, device=device, dtype=torch.float32)
        per_iteration = (res.time - res.trace[0].seconds) / max(res.n_iter, 1)
        M, K, N = gemm_shape(m, n, r)
        reference = 2.0 * M * K * N / product_seconds(M, K, N, seconds=res.time, device=device) / 1e9
        iteration_gflops.append(flops(m, n, r) / per_iteration / 1e9)
        gemm.append(reference)
        ratios.append(iteration_gflops[-1] / reference)
    return {"problem": problem.name, "shape": f"{m}x{n} r{r}", "solver": name, "iters": res.n_iter,
            "ms/iteration": 1e3 * flops(m, n, r) / statistics.median(iteration_gflops) / 1e9,
            "GFLOP/s": statistics.median(iteration_gflops), "GEMM GFLOP/s": statistics.median(gemm),
            "of GEMM": f"{statistics.median(ratios):.0%} ({min(ratios):.0%}–{max(ratios):.0%})"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perf.iteration_rate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--solvers", default="adam", help="comma-separated solver names")
    ap.add_argument("--problems", default="smollm2.0.q,smollm2.0.gate", help="name patterns (fnmatch)")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args(argv)
    try:
        names = [s.strip() for s in args.solvers.split(",") if s.strip()]
        for name in names:
            solvers.solver_class(name)
        device = resolve_device(args.device)
        problems = load_problems(args.problems, args.problems if "minilm" in args.problems else "")
    except ValueError as exc:
        ap.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [rate_rows(p, name, iters=args.iters, repeats=args.repeats, device=device)
            for p in problems for name in names]
    print(f"threads {torch.get_num_threads()}, float32, {args.repeats} turns of {args.iters} iterations")
    print(format_table(rows, floatfmt="{:.4g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
