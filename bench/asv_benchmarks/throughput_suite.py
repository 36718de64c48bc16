"""Throughput of every solver that declares a FLOP model (``Solver.flops``): iterations per second and
achieved GFLOP/s, read against the machine's own GEMM GFLOP/s on the product the solver names as its
reference (``Solver.gemm_shape``; ALS: the normal-matrix GEMM G = W·K with r(r+1)/2 columns).

An iteration is the solver's ``step`` as the solver loop runs it, from its default start. The solver list is
``bench.perf.throughput.modelled_solvers()`` at import, so a new solver file that declares ``flops`` is
tracked with no edit here. ``track_fraction_of_gemm`` measures the iteration and the GEMM back to back in one
process so the ratio is not confounded by load that changed between two benchmarks. Timings are the best of
``REPEAT`` synchronised iterations after a warm-up (``bench.perf.throughput.best_time``).
"""
from __future__ import annotations

import solvers
from bench.perf.throughput import best_time, gemm_gflops, iteration_model, modelled_solvers
from solvers import DeviceProblem, SolverStop
from solvers.device import synchronize
from solvers.initial import initial_factors

from ._common import DEVICES, DTYPES, SEED, build, device_or_skip, refuse_or_skip, size_label, sizes

SIZES = sizes([(768, 768, 64), (3072, 768, 96), (1536, 576, 209)], [(48, 32, 5)])
REPEAT = 3


class Throughput:
    params = [modelled_solvers(), [size_label(*s) for s in SIZES], list(DTYPES), DEVICES]
    param_names = ["solver", "size", "dtype", "device"]
    timeout = 600

    def setup_cache(self):
        return {size_label(*s): build("heavy_tailed", *s, dtype="float64") for s in SIZES}

    def setup(self, problems, name, size, dtype, device):
        self.device = device_or_skip(device)
        problem = problems[size]
        self.solver = solvers.get(name)
        refuse_or_skip(self.solver, problem)
        self.dp = DeviceProblem.from_problem(problem, self.device, DTYPES[dtype], SEED)
        self.start = initial_factors(self.solver.default_init, self.dp, seed=SEED)
        self.state = self.solver.start(self.dp, *(t.clone() for t in self.start))
        m, n = problem.shape
        flops, gemm_shape = iteration_model(name)
        self.flops, self.gemm_shape = flops(m, n, problem.rank), gemm_shape(m, n, problem.rank)
        self.iterate()  # warm-up: the first BLAS/LAPACK calls pay one-off initialisation
        synchronize(self.device)

    def iterate(self):
        try:
            self.state = self.solver.step(self.dp, self.state)
        except SolverStop:  # converged: start over (the step's work was still done)
            self.state = self.solver.start(self.dp, *(t.clone() for t in self.start))

    def iteration_seconds(self) -> float:
        return best_time(self.iterate, self.device, REPEAT)

    def gemm_gflops(self) -> float:
        return gemm_gflops(*self.gemm_shape, dtype=self.dp.dtype, device=self.device, repeat=REPEAT)

    def track_iterations_per_second(self, problems, name, size, dtype, device):
        return 1.0 / self.iteration_seconds()

    track_iterations_per_second.unit = "iterations/s"

    def track_gflops(self, problems, name, size, dtype, device):
        """Achieved GFLOP/s of an iteration (model FLOPs / measured seconds)."""
        return self.flops / self.iteration_seconds() / 1e9

    track_gflops.unit = "GFLOP/s"

    def track_gemm_gflops(self, problems, name, size, dtype, device):
        """This machine's GEMM GFLOP/s on the solver's reference product shape."""
        return self.gemm_gflops()

    track_gemm_gflops.unit = "GFLOP/s"

    def track_fraction_of_gemm(self, problems, name, size, dtype, device):
        """Iteration GFLOP/s ÷ GEMM GFLOP/s, both measured in this one call."""
        gemm = self.gemm_gflops()
        return self.flops / self.iteration_seconds() / 1e9 / gemm

    track_fraction_of_gemm.unit = "ratio"
