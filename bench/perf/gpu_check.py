"""GPU check: correctness against a float64 CPU reference, then throughput, for ALS / Adam / SVP and batched ALS.

    python -m bench.perf.gpu_check                      # on a CUDA machine: the full check (< 5 minutes)
    python -m bench.perf.gpu_check --device cpu --small # the same code paths on tiny problems (CI, no GPU)

1. Correctness. Each solver runs ``--check-iters`` iterations from the truncated-SVD start on a seeded
   Fisher-like problem (``problems.synthetic.heavy_tailed``), once in float64 on the CPU (the reference) and
   once in float32 on ``--device``; the batched modes (``solve_batched`` of ``solvers.als`` and
   ``solvers.adam``) do the same on the batched workload. Printed: both relative errors and their relative
   difference |e₃₂ − e₆₄| / e₆₄ (batched: the worst matrix); above ``--tolerance`` the script exits 1.
2. Throughput in float32 on ``--device`` at 4096×4096 rank 512 (``--small``: 256×192 rank 16): iterations per
   second (the start excluded), ALS's achieved GFLOP/s and its share of the same device's GEMM GFLOP/s on the
   sweep's dominant product shape; the batched modes on 30 matrices 576×576 rank 144: matrices per second of
   a whole solve (SVD start + iterations) and GFLOP/s of the iterations (model FLOPs of
   ``bench.perf.throughput``; Adam's reference GEMM is the (m×n)·(n×r) product). Every timing synchronises CUDA
   before reading the clock (the solvers' ``Clock`` and ``bench.perf.throughput.best_time``).

Solvers that are not registered in this installation are listed as skipped, not failed.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import torch

import solvers
from bench.perf.throughput import (BatchedMode, batched_mode, best_time, gemm_gflops, iteration_model,
                                   stacked_problems)
from bench.tables import print_table
from solvers.device import resolve_device
from problems import synthetic

SOLVERS = ("als", "adam", "svp")
SEED = 0


@dataclass(frozen=True)
class Sizes:
    check: tuple[int, int, int]       # (m, n, rank) of the single-matrix correctness problem
    speed: tuple[int, int, int]       # (m, n, rank) of the throughput problem
    batch: tuple[int, int, int, int]  # (B, m, n, rank) of the batched workload


FULL = Sizes(check=(1024, 1024, 128), speed=(4096, 4096, 512), batch=(30, 576, 576, 144))
SMALL = Sizes(check=(96, 64, 8), speed=(256, 192, 16), batch=(4, 64, 48, 8))
SPEED_ITERS = {"als": 5}  # ALS sweeps are expensive; other solvers run ``--speed-iters``


def _shape(*dims) -> str:
    *lead, rank = dims
    return "×".join(map(str, lead)) + f" r{rank}"


def _fmt(x, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def print_titled_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    if rows:
        print_table(rows)
    else:
        print("  (nothing ran)")


def _rel_diff(value: float, reference: float) -> float:
    return abs(value - reference) / max(abs(reference), torch.finfo(torch.float64).tiny)


def precision_check(name: str, problem, device, iters: int) -> dict:
    """Float32 on ``device`` against float64 on the CPU, same start, same iteration count."""
    solver = solvers.get(name)
    kw = dict(max_iter=iters, init="svd", seed=SEED) if not solver.closed_form else dict(seed=SEED)
    ref = solver.solve(problem, device="cpu", dtype=torch.float64, **kw)
    dev = solver.solve(problem, device=device, dtype=torch.float32, **kw)
    return {"solver": name, "shape": _shape(*problem.shape, problem.rank), "iters": dev.n_iter,
            "rel_error f64 cpu": f"{ref.rel_error:.6e}", f"rel_error f32 {device.type}": f"{dev.rel_error:.6e}",
            "rel diff": _rel_diff(dev.rel_error, ref.rel_error)}


def batched_precision_check(mode: BatchedMode, A, W, rank: int, device, iters: int) -> dict:
    """A batched mode: per-matrix objectives, float32 on ``device`` against float64 on the CPU (worst matrix)."""
    start = mode.solve_batched(A.double(), W.double(), rank, max_iter=0, seed=SEED)[:2]
    f64 = mode.solve_batched(A.double(), W.double(), rank, max_iter=iters, tol=0.0, init=start)[2]
    f32 = mode.solve_batched(A.to(device), W.to(device), rank, max_iter=iters, tol=0.0,
                             init=tuple(t.to(device, torch.float32) for t in start))[2].cpu()
    norm = (W.double() * A.double() ** 2).sum(dim=(1, 2))
    e64, e32 = f64 / norm, f32 / norm
    worst = int(((e32 - e64).abs() / e64).argmax())
    return {"solver": mode.label, "shape": _shape(*A.shape, rank), "iters": iters,
            "rel_error f64 cpu": f"{float(e64[worst]):.6e}", f"rel_error f32 {device.type}": f"{float(e32[worst]):.6e}",
            "rel diff": _rel_diff(float(e32[worst]), float(e64[worst]))}


def speed_solver(name: str, problem, device, iters: int, time_limit: float) -> dict:
    """Iterations per second of a float32 solve on ``device`` (start excluded); GFLOP/s where the solver
    declares a FLOP model (``Solver.flops``), against the GEMM of its declared reference shape."""
    solver = solvers.get(name)
    m, n = problem.shape
    r = problem.rank
    kw = {} if solver.closed_form else dict(max_iter=iters, init="svd", time_limit=time_limit)
    res = solver.solve(problem, device=device, dtype=torch.float32, seed=SEED, **kw)
    loop = res.time - res.trace[0].seconds if not solver.closed_form else res.time
    per_s = res.n_iter / loop if res.n_iter and loop > 0 else None
    gflops = gemm = None
    model = iteration_model(name)
    if model is not None and per_s:
        flops, gemm_shape = model
        gflops = flops(m, n, r) * per_s / 1e9
        gemm = gemm_gflops(*gemm_shape(m, n, r), dtype=torch.float32, device=device)
    return {"solver": name, "shape": _shape(m, n, r), "iters": res.n_iter, "seconds": f"{loop:.3f}",
            "it/s": _fmt(per_s, ".2f"), "matrices/s": "-", "GFLOP/s": _fmt(gflops, ".3g"),
            "GEMM GFLOP/s": _fmt(gemm, ".4g"), "of GEMM": _fmt(gflops / gemm if gemm else None, ".0%"),
            "rel_error": f"{res.rel_error:.4e}"}


def speed_batched(mode: BatchedMode, A, W, rank: int, device, iters: int) -> dict:
    """A batched mode in float32 on ``device``: matrices/s of a whole solve, GFLOP/s of the iterations alone."""
    A, W = A.to(device), W.to(device)
    B, m, n = A.shape
    start = mode.solve_batched(A, W, rank, max_iter=0, seed=SEED)[:2]
    whole = best_time(lambda: mode.solve_batched(A, W, rank, max_iter=iters, tol=0.0, seed=SEED), device, 1)
    *_, f, done = mode.solve_batched(A, W, rank, max_iter=iters, tol=0.0, init=start)  # also the warm-up
    loop = best_time(lambda: mode.solve_batched(A, W, rank, max_iter=iters, tol=0.0, init=start), device, 1,
                     warmup=0)
    gflops = B * done * mode.flops(m, n, rank) / loop / 1e9
    gemm = gemm_gflops(*mode.gemm_shape(m, n, rank), dtype=torch.float32, device=device)
    norm = (W.double() * A.double() ** 2).sum(dim=(1, 2))
    return {"solver": mode.label, "shape": _shape(B, m, n, rank), "iters": done, "seconds": f"{loop:.3f}",
            "it/s": f"{done / loop:.2f}", "matrices/s": f"{B / whole:.2f}", "GFLOP/s": f"{gflops:.3g}",
            "GEMM GFLOP/s": f"{gemm:.4g}", "of GEMM": f"{gflops / gemm:.0%}",
            "rel_error": f"{float((f / norm).mean()):.4e}"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="device to check (default cuda; 'cpu' for a dry run)")
    p.add_argument("--small", action="store_true", help="tiny problems: exercise every code path in seconds")
    p.add_argument("--solvers", default=",".join(SOLVERS),
                   help="comma-separated solver names (als and adam also run their batched modes)")
    p.add_argument("--check-iters", type=int, default=20, help="iterations of the correctness runs")
    p.add_argument("--speed-iters", type=int, default=None,
                   help="iterations of the throughput runs (default 50, with --small 10; ALS: 5)")
    p.add_argument("--time-limit", type=float, default=60.0, help="solver-seconds cap per throughput run")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="largest relative difference f32-on-device vs f64-on-CPU before exiting 1")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"gpu_check: {exc}; run with --device cpu --small for a dry run", file=sys.stderr)
        return 2
    sizes = SMALL if args.small else FULL
    names = [s.strip() for s in args.solvers.split(",") if s.strip()]
    registered = [s for s in names if s in solvers.available()]
    skipped = [s for s in names if s not in registered]
    batched = [mode for mode in map(batched_mode, registered) if mode is not None]  # declared batched modes run too
    began = time.perf_counter()
    print(f"gpu_check on {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, {'small' if args.small else 'full'} sizes")
    if skipped:
        print("skipped (not registered here): " + ", ".join(skipped))

    check_problem = synthetic.heavy_tailed(*sizes.check, seed=SEED)
    A, W = stacked_problems(*sizes.batch)
    checks = [precision_check(s, check_problem, device, args.check_iters) for s in registered]
    checks += [batched_precision_check(mode, A, W, sizes.batch[-1], device, min(args.check_iters, 5)) for mode in batched]
    bad = [c["solver"] for c in checks if not c["rel diff"] <= args.tolerance]
    for c in checks:
        c["rel diff"] = f"{c['rel diff']:.2e}"
    print_titled_table(f"correctness: float32 on {device.type} vs float64 on cpu", checks)

    speed_problem = synthetic.heavy_tailed(*sizes.speed, seed=SEED, dtype="float32")
    iters = args.speed_iters or (10 if args.small else 50)
    speeds = [speed_solver(s, speed_problem, device, SPEED_ITERS.get(s, iters), args.time_limit)
              for s in registered]
    speeds += [speed_batched(mode, A, W, sizes.batch[-1], device, SPEED_ITERS.get(mode.name, iters))
               for mode in batched]
    print_titled_table(f"throughput: float32 on {device.type}", speeds)

    print(f"\ntotal {time.perf_counter() - began:.1f} s")
    if bad:
        print(f"FAILED: relative difference above {args.tolerance:g} for {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
