"""Alternating weighted least squares (ALS): exact block minimisation over U, then over V.

One sweep solves every row of U given V, then every row of V given U (``solvers.weighted_lstsq.row_solve``):
each half-sweep forms all the r×r normal matrices with ONE product G = W·K (K: the n × r(r+1)/2 pairwise
products of V's columns), then solves them with a batched Cholesky. The ridge ``reg`` is proximal (centred at
the current factors, relative to each normal matrix's trace), so every half-sweep is an exact minimisation of
f plus a vanishing damping term: f never increases, and the fixed points are those of plain ALS.

Cost per sweep on an m×n problem at rank r, P = r(r+1)/2:
    4·m·n·P (the two products G = W·K) + 8·m·n·r (residuals and right-hand sides)
    + (m+n)·r³/3 (Cholesky) + 2·(m+n)·r² (triangular solves)  FLOPs;
scratch memory is bounded by ``memory_budget`` bytes whatever m, n and r.

Module functions share that kernel with other code: ``half_sweep`` (one U-update, used by benchmarks and the
CVX cross-check) and ``solve_batched`` (B problems advanced together by the same batched GEMMs and Cholesky).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from problems.objective import weighted_squared_error
from solvers.base import IterativeSolver, converged, default_tolerance, exact_level
from solvers.budget import check_budget
from solvers.initial import batched_initial_factors
from solvers.params import Int, Real
from solvers.weighted_lstsq import DEFAULT_MEMORY_BUDGET, Workspace, flops, row_solve

DEFAULT_REG = 1e-6


class State(NamedTuple):
    U: torch.Tensor
    V: torch.Tensor
    workspace: Workspace


def _batched(X: torch.Tensor) -> torch.Tensor:
    return X if X.dim() == 3 else X.unsqueeze(0)


def half_sweep(A: torch.Tensor, W: torch.Tensor, V: torch.Tensor, reg: float = DEFAULT_REG,
               memory_budget: int = DEFAULT_MEMORY_BUDGET, *, centre: torch.Tensor | None = None,
               workspace: Workspace | None = None) -> torch.Tensor:
    """U minimising Σ W ⊙ (A − U Vᵀ)² + Σ_i λ_i ‖u_i − c_i‖² for fixed V, λ_i = reg·tr(H_i)/r.

    A, W: (m, n) or (B, m, n); V: (n, r) or (B, n, r); centre c: like U, or None for 0 (plain ridge).
    Returns U with A's batch shape. Cost and ``workspace``: see ``solvers.weighted_lstsq``."""
    single = A.dim() == 2
    U = row_solve(_batched(A), _batched(W), _batched(V), None if centre is None else _batched(centre),
                  reg=reg, memory_budget=memory_budget, workspace=workspace)
    return U[0] if single else U


def sweep(A: torch.Tensor, W: torch.Tensor, U: torch.Tensor, V: torch.Tensor, reg: float,
          memory_budget: int, workspace: Workspace | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One ALS sweep on batched (B, m, n) A, W: U given V, then V given U, both centred (proximal); pass the
    same ``workspace`` to every sweep of a solve so its scratch stays mapped."""
    workspace = Workspace() if workspace is None else workspace
    U = row_solve(A, W, V, U, reg=reg, memory_budget=memory_budget, workspace=workspace)
    V = row_solve(A.mT, W.mT, U, V, reg=reg, memory_budget=memory_budget, workspace=workspace)
    return U, V


def solve_batched(A: torch.Tensor, W: torch.Tensor, rank: int, *, max_iter: int = 100, tol: float | None = None,
                  reg: float = DEFAULT_REG, seed: int = 0, init=None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET, callback=None):
    """ALS on B problems at once: A, W (B, m, n) on any device, float32/float64.

    All problems advance together through the same batched GEMMs and Cholesky solves, and each stops where
    the ``als`` solver would stop on it alone (``solvers.base.converged``: its relative decrease ≤ tol, None
    meaning the solver's default for the dtype, or an exact fit): from then on its factors are frozen. The
    loop ends when every problem has stopped, after ``max_iter`` sweeps, or when ``callback(k, f, active)``
    returns a true value; it is called at the start (k = 0) and after every sweep k with the (B,) float64
    objectives f and the (B,) mask of the problems still iterating.
    init: None/"svd" (truncated SVD of each A, balanced), "random" (seeded Gaussian), or (U, V) tensors.
    Returns U (B, m, r), V (B, n, r), the objectives (B,) float64 and the number of sweeps done.
    """
    check_budget(max_iter=max_iter, tol=tol, seed=seed)
    U, V = batched_initial_factors(A, W, rank, init, seed)
    tol = default_tolerance(ALS.default_tol, A.dtype) if tol is None else tol
    exact = exact_level(weighted_squared_error(A, W), A.dtype)
    f = weighted_squared_error(A, W, U, V)
    active = torch.ones_like(f, dtype=torch.bool)
    it, workspace = 0, Workspace()
    stop = callback is not None and callback(0, f, active)
    while not stop and it < max_iter and bool(active.any()):
        U1, V1 = sweep(A, W, U, V, reg, memory_budget, workspace)
        U, V = torch.where(active[:, None, None], U1, U), torch.where(active[:, None, None], V1, V)
        it += 1
        f_prev, f = f, weighted_squared_error(A, W, U, V)
        active = active & ~converged(f_prev, f, tol, exact)
        stop = callback is not None and callback(it, f, active)
    return U, V, f, it


class ALS(IterativeSolver):
    """Alternating weighted least squares with a proximal, trace-relative ridge (see module docstring).

    Parameters: ``reg`` (ridge relative to each normal matrix's trace, centred at the current factors) and
    ``memory_budget`` (bytes of scratch per half-sweep chunk). Cost per sweep: O(mn·r(r+1)/2) GEMM work plus
    O((m+n) r³/3) Cholesky.
    """

    name = "als"
    family = "alternating"
    parameters = {"reg": Real(DEFAULT_REG, ge=0, doc="proximal ridge, relative to each normal matrix's trace"),
                  "memory_budget": Int(DEFAULT_MEMORY_BUDGET, gt=0, doc="bytes of scratch per half-sweep chunk")}
    monotone = True
    exact_on = frozenset({"constant", "separable", "planted"})
    default_max_iter = 1000
    solve_batched = staticmethod(solve_batched)

    @classmethod
    def flops(cls, m: int, n: int, r: int) -> float:
        """One sweep: the U half-sweep (m rows against n columns) plus the V half-sweep, both centred, as
        counted by ``solvers.weighted_lstsq.flops`` (dominant term 2·m·n·r(r+1)/2 each, for G = W·K)."""
        return flops(m, n, r, True) + flops(n, m, r, True)

    @classmethod
    def gemm_shape(cls, m: int, n: int, r: int) -> tuple[int, int, int]:
        """The product that dominates a half-sweep, G = W·K with K of n × r(r+1)/2."""
        return m, n, r * (r + 1) // 2

    def start(self, dp, U, V):
        return State(U, V, Workspace())

    def step(self, dp, state):
        U, V = sweep(dp.A[None], dp.W[None], state.U[None], state.V[None], self.params["reg"],
                     self.params["memory_budget"], state.workspace)
        return State(U[0], V[0], state.workspace)
