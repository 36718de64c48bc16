"""Every registered solver × problem size × device: time per iteration, peak memory and quality at a budget.

The solver list is ``solvers.available()`` at import, so a solver added to the registry is benchmarked with
no edit here; one that refuses a problem (``Solver.refuse``) is skipped for it. Problems are float32 (the
language-model setting), seeded, carry seeded input statistics (``synthetic.with_inputs``, for the solvers that
require them), and are built once in ``setup_cache``:
- ``heavy_tailed`` (Fisher-like importance, f* unknown) for time, memory and relative error;
- ``planted`` (exact rank-r A, heavy-tailed positive W, f* = 0) for relative suboptimality.
Quality is read after ``BUDGET`` iterations (closed forms: their one fit) from the solver's default start:
an iteration budget, not a time budget, so the tracked number does not move with machine load.
"""
from __future__ import annotations

import solvers
from problems import synthetic
from solvers import DeviceProblem, SolverStop
from solvers.device import synchronize
from solvers.initial import initial_factors

from ._common import DEVICES, SEED, build, device_or_skip, refuse_or_skip, size_label, sizes

SIZES = sizes([(256, 192, 16), (1024, 768, 64)], [(40, 30, 4)])
BUDGET = 50
SOLVERS = solvers.available()


class _Problems:
    """Base: the parameter grid and the seeded problems (one ``setup_cache`` shared by the subclasses)."""

    params = [SOLVERS, [size_label(*s) for s in SIZES], DEVICES]
    param_names = ["solver", "size", "device"]
    timeout = 600

    def setup_cache(self):
        return {size_label(*s): {family: synthetic.with_inputs(build(family, *s), seed=SEED)
                                 for family in ("heavy_tailed", "planted")} for s in SIZES}

    def setup(self, problems, name, size, device):
        self.device = device_or_skip(device)
        self.solver = solvers.get(name)
        self.problem = problems[size]["heavy_tailed"]
        self.planted = problems[size]["planted"]
        refuse_or_skip(self.solver, self.problem)

    def solve(self, problem):
        return self.solver.solve(problem, max_iter=BUDGET, seed=SEED, device=self.device)


class Iteration(_Problems):
    """Seconds per iteration (ALS: per sweep; closed-form solvers: their whole fit), from the default start."""

    def setup(self, problems, name, size, device):
        super().setup(problems, name, size, device)
        self.dp = DeviceProblem.from_problem(self.problem, self.device, self.problem.dtype, SEED)
        if not self.solver.closed_form:
            self.start = initial_factors(self.solver.default_init, self.dp, seed=SEED)
            self.state = self.solver.start(self.dp, *(t.clone() for t in self.start))
        self.iterate()  # warm-up: first LAPACK/BLAS calls pay one-off initialisation (seconds for an SVD)
        synchronize(self.device)  # nothing queued on the GPU may leak into the first timed call

    def iterate(self):
        if self.solver.closed_form:
            self.solver.fit(self.dp)
            return
        try:
            self.state = self.solver.step(self.dp, self.state)
        except SolverStop:  # converged: start over (the step's work was still done)
            self.state = self.solver.start(self.dp, *(t.clone() for t in self.start))

    def time_iteration(self, problems, name, size, device):
        self.iterate()
        synchronize(self.device)


class Solve(_Problems):
    """One solve of ``BUDGET`` iterations: its peak memory and the quality it reaches."""

    def peakmem_solve(self, problems, name, size, device):
        self.solve(self.problem)

    def track_rel_error(self, problems, name, size, device):
        """f / Σ W A² after the budget (heavy-tailed W)."""
        return self.solve(self.problem).rel_error

    track_rel_error.unit = "relative error"

    def track_rel_suboptimality(self, problems, name, size, device):
        """(f − f*) / Σ W A² after the budget on a problem with known f* (planted low rank, f* = 0)."""
        return self.solve(self.planted).rel_error - self.planted.rel_f_star

    track_rel_suboptimality.unit = "relative suboptimality"
