"""Batched solvers: B same-shape matrices (e.g. the 30 q_proj of SmolLM2, 576×576) solved as one problem.

Every solver that declares a batched entry point (``Solver.solve_batched``; ``bench.perf.throughput.batched_solvers``,
so a new one is benchmarked with no edit here) advances all B problems through the same batched products, which is
what fills a GPU. Tracked per solver: matrices per second of a
whole solve (truncated-SVD start plus ``ITERATIONS`` iterations, as a user runs it) and the achieved GFLOP/s of
the iterations alone (from a precomputed start, model FLOPs ``B·iterations·BatchedMode.flops`` over measured
seconds). Each solver runs as many iterations as cost about ``ITERATION_FLOPS`` by its own FLOP model.
"""
from __future__ import annotations

from bench.perf.throughput import batched_mode, batched_solvers, best_time, stacked_problems
from solvers.device import synchronize

from ._common import DEVICES, SEED, device_or_skip, size_label, sizes

SHAPES = {size_label(m, n, r, b): (b, m, n, r)
          for b, m, n, r in sizes([(8, 192, 576, 48), (30, 576, 576, 144)], [(3, 24, 16, 4)])}
ITERATION_FLOPS = 6e9  # per matrix of the larger shape: one ALS sweep, or about 20 first-order iterations
REPEAT = 1


class Batched:
    params = [batched_solvers(), list(SHAPES), DEVICES]
    param_names = ["solver", "shape", "device"]
    timeout = 600

    def setup_cache(self):
        return {label: stacked_problems(*shape) for label, shape in SHAPES.items()}

    def setup(self, stacks, solver, shape, device):
        self.mode = batched_mode(solver)
        self.device = device_or_skip(device)
        self.A, self.W = (t.to(self.device) for t in stacks[shape])
        batch, m, n, self.rank = SHAPES[shape]
        self.iterations = max(1, round(ITERATION_FLOPS / self.mode.flops(576, 576, 144)))
        self.start = self.mode.solve_batched(self.A, self.W, self.rank, max_iter=0, seed=SEED)[:2]
        self.iteration_flops = batch * self.mode.flops(m, n, self.rank)
        self.mode.solve_batched(self.A, self.W, self.rank, max_iter=1, init=self.start)  # warm-up
        synchronize(self.device)

    def solve(self, init=None):
        """``iterations`` batched iterations (fewer if every problem stops changing); records how many ran."""
        *_, self.done = self.mode.solve_batched(self.A, self.W, self.rank, max_iter=self.iterations, tol=0.0,
                                                seed=SEED, init=init)

    def time_solve(self, stacks, solver, shape, device):
        self.solve()
        synchronize(self.device)

    def track_matrices_per_second(self, stacks, solver, shape, device):
        """B / seconds of one whole batched solve (SVD start + iterations)."""
        return self.A.shape[0] / best_time(self.solve, self.device, REPEAT)

    track_matrices_per_second.unit = "matrices/s"

    def track_gflops(self, stacks, solver, shape, device):
        """Achieved GFLOP/s of the batched iterations (start precomputed, so the SVD is not counted)."""
        seconds = best_time(lambda: self.solve(self.start), self.device, REPEAT)
        return self.iteration_flops * self.done / seconds / 1e9

    track_gflops.unit = "GFLOP/s"
