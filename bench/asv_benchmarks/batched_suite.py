"""Batched ALS: B same-shape matrices (e.g. the 30 q_proj of SmolLM2, 576×576) solved as one problem.

``solvers.als.solve_batched`` advances all B problems through the same batched GEMMs and Cholesky solves,
which is what fills a GPU. Tracked: matrices per second of a whole solve (truncated-SVD start plus ``SWEEPS``
sweeps, as a user runs it) and the achieved GFLOP/s of the sweeps alone (from a precomputed start, model
FLOPs ``B·SWEEPS·bench.throughput.als_sweep_flops`` over measured seconds).
"""
from __future__ import annotations

from bench.throughput import als_sweep_flops, as_device, best_time, stacked_problems, synchronize

from ._common import DEVICES, SEED, als_or_skip, size_label, sizes

SHAPES = {size_label(m, n, r, b): (b, m, n, r)
          for b, m, n, r in sizes([(8, 192, 576, 48), (30, 576, 576, 144)], [(3, 24, 16, 4)])}
SWEEPS = 2
REPEAT = 1


class BatchedALS:
    params = [list(SHAPES), DEVICES]
    param_names = ["shape", "device"]
    timeout = 600

    def setup_cache(self):
        return {label: stacked_problems(*shape) for label, shape in SHAPES.items()}

    def setup(self, stacks, shape, device):
        self.als = als_or_skip()
        self.device = as_device(device)
        self.A, self.W = (t.to(self.device) for t in stacks[shape])
        batch, m, n, self.rank = SHAPES[shape]
        self.start = self.als.solve_batched(self.A, self.W, self.rank, max_iter=0, seed=SEED)[:2]
        self.sweep_flops = batch * als_sweep_flops(m, n, self.rank)
        self.als.solve_batched(self.A, self.W, self.rank, max_iter=1, init=self.start)  # warm-up
        synchronize(self.device)

    def solve(self, init=None):
        """SWEEPS batched sweeps (fewer if every problem stops changing); records how many ran."""
        *_, self.sweeps = self.als.solve_batched(self.A, self.W, self.rank, max_iter=SWEEPS, tol=0.0,
                                                 seed=SEED, init=init)

    def time_solve(self, stacks, shape, device):
        self.solve()
        synchronize(self.device)

    def track_matrices_per_second(self, stacks, shape, device):
        """B / seconds of one whole batched solve (SVD start + SWEEPS sweeps)."""
        return self.A.shape[0] / best_time(self.solve, self.device, REPEAT)

    track_matrices_per_second.unit = "matrices/s"

    def track_gflops(self, stacks, shape, device):
        """Achieved GFLOP/s of the batched sweeps (start precomputed, so the SVD is not counted)."""
        seconds = best_time(lambda: self.solve(self.start), self.device, REPEAT)
        return self.sweep_flops * self.sweeps / seconds / 1e9

    track_gflops.unit = "GFLOP/s"
