"""ALS throughput: sweeps per second and achieved GFLOP/s, read against the machine's own GEMM GFLOP/s.

A sweep is ``ALS.step`` (the U half-sweep, then the V half-sweep, as the solver runs them); its FLOPs are the
kernel's own model (``bench.throughput.als_sweep_flops``, dominated by the normal-matrix GEMMs G = W·K with
r(r+1)/2 columns). The reference rate is one GEMM of that dominant shape, same dtype, same device, measured
by ``track_gemm_gflops``; ``track_fraction_of_gemm`` measures both back to back in one process so the ratio
is not confounded by load that changed between two benchmarks. Timings are the best of ``REPEAT``
synchronised sweeps after a warm-up (``bench.throughput.best_time``).
"""
from __future__ import annotations

import solvers
from bench.throughput import als_gemm_shape, als_sweep_flops, as_device, best_time, gemm_gflops, synchronize
from solvers import DeviceProblem
from solvers.initial import initial_factors

from ._common import DEVICES, DTYPES, SEED, als_or_skip, build, size_label, sizes

SIZES = sizes([(768, 768, 64), (3072, 768, 96), (1536, 576, 209)], [(48, 32, 5)])
REPEAT = 3


class ALSThroughput:
    params = [[size_label(*s) for s in SIZES], list(DTYPES), DEVICES]
    param_names = ["size", "dtype", "device"]
    timeout = 600

    def setup_cache(self):
        return {size_label(*s): build("heavy_tailed", *s, dtype="float64") for s in SIZES}

    def setup(self, problems, size, dtype, device):
        als_or_skip()
        self.device = as_device(device)
        problem = problems[size]
        self.solver = solvers.get("als")
        self.dp = DeviceProblem.from_problem(problem, self.device, DTYPES[dtype], SEED)
        self.state = self.solver.start(self.dp, *initial_factors("svd", self.dp, seed=SEED))
        m, n = problem.shape
        self.flops = als_sweep_flops(m, n, problem.rank)
        self.gemm_shape = als_gemm_shape(m, n, problem.rank)
        self.sweep()  # warm-up: the first BLAS/LAPACK calls pay one-off initialisation
        synchronize(self.device)

    def sweep(self):
        self.state = self.solver.step(self.dp, self.state)

    def sweep_seconds(self) -> float:
        return best_time(self.sweep, self.device, REPEAT)

    def gemm_gflops(self) -> float:
        return gemm_gflops(*self.gemm_shape, dtype=self.dp.dtype, device=self.device, repeat=REPEAT)

    def time_sweep(self, problems, size, dtype, device):
        self.sweep()
        synchronize(self.device)

    def track_sweeps_per_second(self, problems, size, dtype, device):
        return 1.0 / self.sweep_seconds()

    track_sweeps_per_second.unit = "sweeps/s"

    def track_gflops(self, problems, size, dtype, device):
        """Achieved GFLOP/s of an ALS sweep (model FLOPs / measured seconds)."""
        return self.flops / self.sweep_seconds() / 1e9

    track_gflops.unit = "GFLOP/s"

    def track_gemm_gflops(self, problems, size, dtype, device):
        """This machine's GEMM GFLOP/s on the sweep's dominant product shape (the reference)."""
        return self.gemm_gflops()

    track_gemm_gflops.unit = "GFLOP/s"

    def track_fraction_of_gemm(self, problems, size, dtype, device):
        """ALS sweep GFLOP/s ÷ GEMM GFLOP/s, both measured in this one call."""
        gemm = self.gemm_gflops()
        return self.flops / self.sweep_seconds() / 1e9 / gemm

    track_fraction_of_gemm.unit = "ratio"
