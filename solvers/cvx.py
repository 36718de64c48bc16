"""Convex reference for small problems: the nuclear-norm relaxation solved by cvxpy, landed on rank r.

    X_λ = argmin_X Σ_ij W_ij (A − X)_ij² + λ ‖X‖_*

is convex, so its solution does not depend on any start. λ ≥ λ_max = 2 ‖W ⊙ A‖₂ gives X = 0 (the
subgradient condition at 0); smaller λ raise the rank. ``fit`` takes the smallest λ whose solution has
numerical rank ≤ r. It first solves the limit λ → 0⁺, min ‖X‖_* subject to X = A wherever W > 0 (X = A
itself when W > 0 everywhere; the minimum-nuclear-norm completion otherwise). When that has rank > r, so do
all small λ, and it bisects log λ over [``lam_min`` · λ_max, λ_max] until the bracket is within a factor
1 + ``lam_tol``. The rank-r truncation of X_λ gives column and row spaces P, Q; with ``refit`` (default)
the core is then refitted, S = argmin_S Σ W (A − P S Qᵀ)², a weighted least-squares problem in r² unknowns
that can only lower f (the truncation is one candidate S) and removes the nuclear norm's shrinkage.
Without ``refit`` the result is the plain truncation P_r(X_λ).

Exact (up to the conic solver's accuracy) with ``refit`` on
- constant W ≡ c: X_λ is singular-value soft-thresholding of A, so P, Q are A's leading singular spaces
  and the refit returns P_r(A);
- planted (rank(A) ≤ r, W > 0): the λ → 0⁺ limit is A itself.
On binary W (completion) the limit is nuclear-norm matrix completion, exact with high probability under
incoherence and enough samples (Candès & Recht 2009) — not guaranteed, so not claimed. Not exact for
separable or general W: the relaxation's spaces are not the WLRA optimum's.

Cost: one conic solve per λ (an SDP with an (m + n)² semidefinite block; cvxpy re-uses the compiled
problem across λ and SCS warm-starts), 1 + ⌈log₂(ln(1/lam_min) / ln(1 + lam_tol))⌉ ≈ 11 solves at most,
plus an mn × r² least-squares refit, O(mn r⁴). Refuses m·n > ``max_size``.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from solvers.base import ClosedFormSolver
from solvers.linalg import balanced_factors, rebalance, truncated_svd
from solvers.params import Choice, Flag, Real

SOLVER_OPTIONS = {"SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 100_000}, "CLARABEL": {}}


def _import_cvxpy():
    try:
        import cvxpy
    except ImportError as err:
        raise ImportError("solver 'cvx' needs the cvxpy package: pip install cvxpy "
                          "(or pip install 'wlrbench[cvx]')") from err
    return cvxpy


def refit_core(A: torch.Tensor, W: torch.Tensor, P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """S = argmin_S Σ W (A − P S Qᵀ)²: least squares on the mn rows √W_ij (P_i ⊗ Q_j), O(mn r⁴)."""
    (m, r), n = P.shape, Q.shape[0]
    root = W.sqrt()
    design = (root[:, :, None, None] * P[:, None, :, None] * Q[None, :, None, :]).reshape(m * n, r * r)
    solution = torch.linalg.lstsq(design, (root * A).reshape(m * n, 1), driver="gelsd").solution
    return solution.reshape(r, r)


class CVX(ClosedFormSolver):
    """Nuclear-norm relaxation via cvxpy with λ bisected onto rank r, then truncation and refit
    (see module docstring). Parameters: ``solver`` the conic solver ("SCS" or "CLARABEL"), ``refit``,
    ``lam_min`` (λ_min / λ_max), ``lam_tol`` (bisection bracket), ``rank_tol`` (a singular value of X_λ
    counts when above rank_tol · ‖A‖₂). The result's ``info`` holds ``lambda`` (the chosen λ in units of
    λ_max; 0 for the λ → 0⁺ limit), ``relaxed_rank`` (the numerical rank of X_λ) and ``conic_solves``.
    ``time_limit`` is checked between conic solves: a bisection cut short returns the smallest λ found so
    far whose rank is ≤ r (the zero matrix if none) with stop reason "time_limit"."""

    name = "cvx"
    family = "convex"
    parameters = {"solver": Choice("SCS", tuple(SOLVER_OPTIONS)), "refit": Flag(True),
                  "lam_min": Real(1e-6, gt=0, lt=1), "lam_tol": Real(0.01, gt=0, lt=1),
                  "rank_tol": Real(1e-6, gt=0, lt=1)}
    exact_on = frozenset({"constant", "planted"})
    max_size = 5000

    def solution(self, dp, time_limit=None):
        A = dp.A.detach().cpu().double()
        W = dp.W.detach().cpu().double()
        # Scale to Σ W A² = 1 and mean(W) = 1 so the conic solver's tolerances act as relative ones;
        # W's scale does not move any minimiser, A's scale is undone at the end.
        norm = math.sqrt(float((W * A * A).sum()))
        A, W = A / norm, W / W.mean()
        X, info = self._relaxed_solution(A, W, dp.rank, time_limit)
        P, s, Q = truncated_svd(X, dp.rank)
        U, V = rebalance(P @ refit_core(A, W, P, Q), Q) if self.params["refit"] else balanced_factors(P, s, Q)
        root = math.sqrt(norm)
        return (U * root).to(dp.device, dp.dtype), (V * root).to(dp.device, dp.dtype), info

    def _relaxed_solution(self, A: torch.Tensor, W: torch.Tensor, rank: int, time_limit: float | None):
        """(X_λ for the smallest λ found as in the module docstring whose numerical rank is ≤ ``rank``, info)."""
        cp = _import_cvxpy()
        X = cp.Variable(A.shape)
        lam = cp.Parameter(nonneg=True)
        penalised = cp.Problem(cp.Minimize(cp.sum_squares(cp.multiply(W.sqrt().numpy(), A.numpy() - X))
                                           + lam * cp.normNuc(X)))
        mask = (W > 0).double().numpy()
        limit = cp.Problem(cp.Minimize(cp.normNuc(X)), [cp.multiply(mask, X) == mask * A.numpy()])
        lam_max = 2 * float(torch.linalg.matrix_norm(W * A, 2))
        threshold = self.params["rank_tol"] * float(torch.linalg.matrix_norm(A, 2))
        solver = self.params["solver"]
        start, solves = time.perf_counter(), 0

        def solution(problem, where):
            nonlocal solves
            problem.solve(solver=solver, **SOLVER_OPTIONS[solver])
            solves += 1
            if problem.status not in ("optimal", "optimal_inaccurate"):
                raise RuntimeError(f"cvxpy/{solver} returned status {problem.status!r} at {where}")
            Xv = torch.from_numpy(np.array(X.value, dtype=np.float64))
            return Xv, int((torch.linalg.svdvals(Xv) > threshold).sum())

        best, found = solution(limit, "λ → 0⁺")
        chosen, info = 0.0, {}
        if found > rank:  # then every small λ has rank > r too: bisect above lam_min
            lo, chosen, best, found = self.params["lam_min"], 1.0, torch.zeros_like(A), 0
            while chosen / lo > 1 + self.params["lam_tol"]:
                if time_limit is not None and time.perf_counter() - start >= time_limit:
                    info = {"stop_reason": "time_limit",
                            "message": f"time limit reached after {solves} conic solves; λ bracket "
                                       f"[{lo:.3g}, {chosen:.3g}] λ_max not closed"}
                    break
                mid = math.sqrt(lo * chosen)
                lam.value = mid * lam_max
                X_mid, rank_mid = solution(penalised, f"λ = {mid:.3g} λ_max")
                if rank_mid > rank:
                    lo = mid
                else:
                    chosen, best, found = mid, X_mid, rank_mid
        return best, {**info, "lambda": chosen, "relaxed_rank": found, "conic_solves": solves}


def weighted_ridge_reference(A: torch.Tensor, W: torch.Tensor, V: torch.Tensor, ridge: torch.Tensor,
                             solver: str = "CLARABEL") -> torch.Tensor:
    """U = argmin_U Σ W (A − U Vᵀ)² + Σ_i ridge_i ‖u_i‖² for fixed V, by cvxpy (float64, CPU).

    The half-step of alternating least squares, posed as one convex QP instead of m r×r normal equations:
    the independent reference the ALS kernel is tested against.
    """
    cp = _import_cvxpy()
    A, W, V, ridge = (t.detach().cpu().double().numpy() for t in (A, W, V, ridge))
    U = cp.Variable((A.shape[0], V.shape[1]))
    fit = cp.sum_squares(cp.multiply(np.sqrt(W), A - U @ V.T))
    problem = cp.Problem(cp.Minimize(fit + cp.sum_squares(cp.multiply(np.sqrt(ridge)[:, None], U))))
    problem.solve(solver=solver)
    if problem.status != "optimal":
        raise RuntimeError(f"cvxpy/{solver} returned status {problem.status!r}")
    return torch.from_numpy(np.array(U.value, dtype=np.float64))
