"""Batched solvers: B same-shape matrices (e.g. the 30 q_proj of SmolLM2, 576×576) solved as one problem.

``solve_batched`` of ``solvers.als`` and ``solvers.adam`` (``bench.throughput.BATCHED``) advances all B problems
through the same batched products, which is what fills a GPU. Tracked per solver: matrices per second of a
whole solve (truncated-SVD start plus ``ITERATIONS`` iterations, as a user runs it) and the achieved GFLOP/s of
the iterations alone (from a precomputed start, model FLOPs ``B·iterations·BatchedMode.flops`` over measured
seconds). A solver without a batched mode in this build is skipped.
"""
from __future__ import annotations

from bench.throughput import BATCHED, as_device, batched_mode, best_time, stacked_problems, synchronize

from ._common import DEVICES, SEED, size_label, sizes

SHAPES = {size_label(m, n, r, b): (b, m, n, r)
          for b, m, n, r in sizes([(8, 192, 576, 48), (30, 576, 576, 144)], [(3, 24, 16, 4)])}
ITERATIONS = {"als": 2, "adam": 20}  # an ALS sweep costs about r/3 Adam iterations
REPEAT = 1


class Batched:
    params = [list(BATCHED), list(SHAPES), DEVICES]
    param_names = ["solver", "shape", "device"]
    timeout = 600

    def setup_cache(self):
        return {label: stacked_problems(*shape) for label, shape in SHAPES.items()}

    def setup(self, stacks, solver, shape, device):
        self.mode = batched_mode(solver)
        if self.mode is None:
            raise NotImplementedError(f"solvers.{solver} has no batched mode in this build")
        self.device = as_device(device)
        self.A, self.W = (t.to(self.device) for t in stacks[shape])
        batch, m, n, self.rank = SHAPES[shape]
        self.iterations = ITERATIONS[solver]
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
