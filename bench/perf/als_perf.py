"""ALS and EM performance, measured as ratios within one run (``python -m bench.perf.als_perf``).

1. ALS sweep GFLOP/s against this machine's own GEMM GFLOP/s, both measured here, at 768×768 r64,
   3072×768 r96 and 1536×576 r209 in float32 and float64. The FLOP count of a sweep (U- then V-update, both
   centred as in the solver) is ``solvers.weighted_lstsq.flops``:
       per half-sweep of m rows:  2·m·n·r(r+1)/2 (G = W·K) + 4·m·n·r (residual, right-hand side)
                                  + m·r³/3 (Cholesky) + 2·m·r² (triangular solves)
   Only these useful FLOPs count: the few mirrored pairs the blocked K recomputes, the element-wise work and
   the copies are overhead. GEMM references: a 2048³ square product (the machine's rate) and one product of
   the sweep's dominant shape, (m × n)·(n × r(r+1)/2). Each time is the best of ``--repeat`` runs.
2. Peak memory of an 11008×4096 rank-1024 float32 half-sweep with the default budget, in a subprocess:
   max RSS minus the RSS once A, W and V are allocated (torch's CPU allocations are invisible to tracemalloc).
   The scratch peak is per row chunk, so ``--big-chunks K`` measures the first K chunks only (the rest of the
   run repeats them); the remaining rows of the output U, (m − K·rows)·r·4 bytes, are added and printed.
3. EM's known weakness: iterations for EM (accel none / nesterov / anderson) to come within 1% of the value
   ALS converges to on heavy-tailed W, against ALS's own count.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.perf.throughput import best_time, gemm_gflops
from solvers.als import ALS
from solvers.weighted_lstsq import DEFAULT_MEMORY_BUDGET, chunk_sizes

SHAPES = [(768, 768, 64), (3072, 768, 96), (1536, 576, 209)]
BIG = (11008, 4096, 1024)


def sweep_rates(dtype: torch.dtype, repeat: int) -> list[dict]:
    from solvers.als import DEFAULT_REG, sweep
    from solvers.weighted_lstsq import Workspace

    g = torch.Generator().manual_seed(0)
    square = gemm_gflops(2048, 2048, 2048, dtype=dtype, repeat=repeat)
    rows = []
    for m, n, r in SHAPES:
        A, W = torch.randn(1, m, n, generator=g).to(dtype), torch.rand(1, m, n, generator=g).to(dtype)
        U, V = torch.randn(1, m, r, generator=g).to(dtype), torch.randn(1, n, r, generator=g).to(dtype)
        workspace = Workspace()                                    # kept across sweeps, as the solver does
        t = best_time(lambda: sweep(A, W, U, V, DEFAULT_REG, DEFAULT_MEMORY_BUDGET, workspace), "cpu", repeat)
        same_shape = gemm_gflops(*ALS.gemm_shape(m, n, r), dtype=dtype, repeat=repeat)
        rate = ALS.flops(m, n, r) / t / 1e9
        rows.append(dict(dtype=str(dtype).removeprefix("torch."), shape=f"{m}x{n} r{r}", sweep_s=t,
                         sweep_gflops=rate, gemm_square_gflops=square, gemm_same_shape_gflops=same_shape,
                         ratio_square=rate / square, ratio_same_shape=rate / same_shape))
    return rows


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def big_half_sweep(chunks: int) -> dict:
    """Runs in its own process (see module docstring, item 2)."""
    from solvers.als import half_sweep

    m, n, r = BIG
    g = torch.Generator().manual_seed(0)
    A, W, V = torch.randn(m, n, generator=g), torch.rand(m, n, generator=g), torch.randn(n, r, generator=g)
    rows, _ = chunk_sizes(1, m, n, r, 4, DEFAULT_MEMORY_BUDGET)
    done = min(m, chunks * rows)
    base = _rss_bytes()
    start = time.perf_counter()
    U = half_sweep(A[:done], W[:done], V)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    rest = (m - done) * r * 4
    return dict(shape=f"{m}x{n} r{r} float32", budget_bytes=DEFAULT_MEMORY_BUDGET, rows_per_chunk=rows,
                rows_done=done, seconds=seconds, finite=bool(torch.isfinite(U).all()),
                peak_beyond_inputs_bytes=peak - base + rest, rest_of_output_bytes=rest)


def em_vs_als(max_iter: int) -> list[dict]:
    import solvers
    from problems import synthetic

    out = []
    for m, n, r in [(40, 30, 4), (120, 90, 8)]:
        p = synthetic.heavy_tailed(m=m, n=n, rank=r)
        als = solvers.get("als").solve(p, init="svd", max_iter=500, tol=0.0)
        target = als.objective * 1.01
        reach = lambda res: next((t.iteration for t in res.trace if t.objective <= target), None)  # noqa: E731
        row = dict(problem=p.name, als_rel_error=als.rel_error, als_iters=reach(als), em_cap=max_iter)
        for accel in ("none", "nesterov", "anderson"):
            em = solvers.get("em", accel=accel).solve(p, init="svd", max_iter=max_iter, tol=0.0)
            row[f"em_{accel}_iters"] = reach(em)
            row[f"em_{accel}_rel_error"] = em.rel_error
        out.append(row)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big-chunks", type=int, default=2, help="row chunks of the 11008×4096 r1024 run; 0 skips")
    parser.add_argument("--em-iters", type=int, default=3000)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--_big", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._big is not None:
        print(json.dumps(big_half_sweep(args._big)))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print("FLOPs per half-sweep of m rows: 2·m·n·r(r+1)/2 + 4·m·n·r + m·r³/3 + 2·m·r² (sweep = U- and V-half)")
    results = {"sweeps": [row for dt in (torch.float32, torch.float64) for row in sweep_rates(dt, args.repeat)]}
    print(f"{'dtype':8s} {'shape':16s} {'sweep s':>8s} {'GFLOP/s':>8s} {'GEMM sq':>8s} {'GEMM same':>9s} "
          f"{'ratio sq':>8s} {'ratio same':>10s}")
    for row in results["sweeps"]:
        print(f"{row['dtype']:8s} {row['shape']:16s} {row['sweep_s']:8.3f} {row['sweep_gflops']:8.1f} "
              f"{row['gemm_square_gflops']:8.1f} {row['gemm_same_shape_gflops']:9.1f} {row['ratio_square']:8.0%} "
              f"{row['ratio_same_shape']:10.0%}")
    if args.big_chunks > 0:
        threads = ["--threads", str(args.threads)] if args.threads else []
        proc = subprocess.run([sys.executable, "-m", "bench.perf.als_perf", "--_big", str(args.big_chunks), *threads],
                              capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
        big = results["big"] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"\n{big['shape']} half-sweep, budget {big['budget_bytes'] / 2**30:.2f} GiB: "
              f"{big['rows_per_chunk']} rows per chunk, {big['rows_done']} rows measured in {big['seconds']:.1f} s; "
              f"peak beyond A, W, V: {big['peak_beyond_inputs_bytes'] / 2**30:.2f} GiB "
              f"(incl. {big['rest_of_output_bytes'] / 2**20:.0f} MiB for the rest of U)")
    results["em"] = em_vs_als(args.em_iters)
    print("\nIterations to within 1% of ALS's converged objective on heavy-tailed W (None: not within the cap)")
    for row in results["em"]:
        print(f"{row['problem']}: ALS {row['als_iters']} (rel_error {row['als_rel_error']:.4f}); EM cap "
              f"{row['em_cap']}: none {row['em_none_iters']} ({row['em_none_rel_error']:.4f}), nesterov "
              f"{row['em_nesterov_iters']} ({row['em_nesterov_rel_error']:.4f}), anderson "
              f"{row['em_anderson_iters']} ({row['em_anderson_rel_error']:.4f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
