"""Levenberg–Marquardt on the factors (U, V) with matrix-free preconditioned conjugate gradients.

Write f(U, V) = ‖ρ‖², ρ = √W ⊙ (A − U Vᵀ), R = A − U Vᵀ. For a step Z = (dU, dV), with
E = W ⊙ (dU Vᵀ + U dVᵀ):

    b = −∇f / 2 = ((W⊙R) V, (W⊙R)ᵀ U),
    Jᵀ J Z = (E V, Eᵀ U)                                         (Gauss–Newton),
    ½ ∇²f Z = Jᵀ J Z − ((W⊙R) dV, (W⊙R)ᵀ dU)                     (full Hessian, the default),

each product O(mnr); the ((m+n)r)² matrix is never formed. One iteration solves (H + λD) Z = b by CG to a
relative residual min(0.1, √(‖b‖/‖b₀‖)) (inexact Newton: superlinear convergence), with Marquardt's scaling
D = the exact r×r diagonal blocks of JᵀJ — row i of U couples only with itself through Vᵀ diag(W_i,:) V,
the ALS normal matrix, likewise for the rows of V — or, with ``scaling="diagonal"``, JᵀJ's diagonal.
D⁻¹ is also the CG preconditioner: it is the block diagonal of H + λD up to the factor 1 + λ (the full
Hessian's extra term only couples U with V). The scaling makes λ dimensionless, so heavy-tailed rows and
columns are damped alike, and large λ turns the step into a simultaneous (Jacobi) ALS step.

A step is accepted only when f decreases, so the method is monotone. λ follows Nielsen (1999): with the
gain ratio ϱ = (f − f(U + dU, V + dV)) / (2 Zᵀb − ZᵀHZ), an accepted step sets λ ← λ·max(1/3, 1 − (2ϱ − 1)³),
a rejected one — or CG meeting non-positive curvature of H + λD (possible with the full Hessian away from
a minimum) in its first direction — sets λ ← λ·ν, ν ← 2ν; met later, it truncates the CG solve instead.
λ > 0 also removes the r² gauge directions (dU, dV) = (U G, −V Gᵀ) along which U Vᵀ is unchanged and H is
singular; the factors are rebalanced (UᵀU = VᵀV) after every step.
The full Hessian converges quadratically near a minimum whatever the residual; Gauss–Newton only
linearly when the optimal residual is large (heavy-tailed W), quadratically when f* = 0.

Cost per iteration: O(mnr²) for D (one m×n by n×r² product per side; O(mnr) for "diagonal") and its
Cholesky factors O((m + n) r³), plus O(mnr) per CG iteration and per trial step.
Memory: O(mn) and O((m + n) r²) for D.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from solvers.base import IterativeSolver, SolverStop
from solvers.linalg import rebalance
from solvers.objective import value_and_grad
from solvers.params import Choice, Int, Real
from solvers.weighted_lstsq import normal_matrices

FORCING_MAX = 0.1     # CG relative residual never looser than this
LAMBDA_FLOOR = 1e-12  # λ never below this (dimensionless: it multiplies the scaling D)
LAMBDA_CEILING = 1e16  # λ beyond this with no decrease: nothing left to gain
SCALING_FLOOR = 1e-12  # D gets max(this, 10 eps) · mean diag(D) added: rows of zero weight stay solvable


@dataclass
class LMState:
    U: torch.Tensor
    V: torch.Tensor
    f: float
    b: torch.Tensor      # −∇f / 2 stacked as [(W⊙R) V; (W⊙R)ᵀ U], (m + n) × r
    lam: float
    nu: float
    b0_norm: float


class Scaling(NamedTuple):
    """The Marquardt scaling D (JᵀJ's diagonal blocks or diagonal): ``mul`` Z ↦ D Z, ``solve`` Z ↦ D⁻¹ Z."""

    mul: Callable[[torch.Tensor], torch.Tensor]
    solve: Callable[[torch.Tensor], torch.Tensor]


def diagonal_blocks(W, U, V, block: bool) -> torch.Tensor:
    """Diagonal blocks of JᵀJ: rows i of U get Vᵀ diag(W_i) V, rows j of V get Uᵀ diag(W_:j) U
    ((m+n)×r×r, one m×n by n×r(r+1)/2 product per side), or just their diagonals W V², Wᵀ U² ((m+n)×r)."""
    if not block:
        return torch.cat([W @ (V * V), W.T @ (U * U)])
    return torch.cat([normal_matrices(W, V), normal_matrices(W.T, U)])  # ALS's memory-budgeted kernel


def marquardt_scaling(W, U, V, block: bool) -> Scaling:
    """D from ``diagonal_blocks`` plus a floor; a Cholesky factorisation per block, O((m + n) r³)."""
    D = diagonal_blocks(W, U, V, block)
    floor = max(SCALING_FLOOR, 10 * torch.finfo(D.dtype).eps)
    if not block:
        D = D + floor * D.mean()
        return Scaling(lambda Z: D * Z, lambda Z: Z / D)
    eye = torch.eye(D.shape[-1], dtype=D.dtype, device=D.device)
    D = D + floor * D.diagonal(dim1=-2, dim2=-1).mean() * eye
    L = torch.linalg.cholesky(D)
    return Scaling(lambda Z: (D @ Z[:, :, None])[:, :, 0], lambda Z: torch.cholesky_solve(Z[:, :, None], L)[:, :, 0])


class Newton(IterativeSolver):
    """Levenberg–Marquardt with matrix-free preconditioned CG (see module docstring).

    Parameters: ``damping`` the initial λ (relative to the scaling D, so dimensionless); ``cg_max_iter``
    CG iterations per linear solve; ``hessian`` "full" (default) or "gauss-newton"; ``scaling`` "block"
    (D = JᵀJ's exact r×r diagonal blocks, default) or "diagonal" (D = diag(JᵀJ): O(mnr) instead of
    O(mnr²), O((m + n) r) memory instead of O((m + n) r²)).
    """

    name = "newton"
    family = "second-order"
    parameters = {"damping": Real(1e-3, gt=0, doc="initial Levenberg–Marquardt λ"),
                  "cg_max_iter": Int(100, ge=1), "scaling": Choice("block", ("block", "diagonal")),
                  "hessian": Choice("full", ("full", "gauss-newton"))}
    monotone = True
    exact_on = frozenset({"constant", "separable", "planted"})
    default_max_iter = 200

    def start(self, dp, U, V):
        U, V = rebalance(U, V)
        f, b = self._value_and_b(dp, U, V)
        return LMState(U, V, f, b, self.params["damping"], 2.0, float(torch.linalg.vector_norm(b)))

    @staticmethod
    def _value_and_b(dp, U, V):
        f, gU, gV = value_and_grad(dp.A, dp.W, U, V)
        return float(f), torch.cat([gU, gV]) / -2

    def hessian_operator(self, dp, U, V) -> Callable[[torch.Tensor], torch.Tensor]:
        """Z ↦ ½∇²f · Z = Jᵀ J Z − ((W⊙R) dV, (W⊙R)ᵀ dU), or Jᵀ J Z alone for Gauss–Newton; O(mnr) each."""
        m = U.shape[0]
        WR = dp.W * (dp.A - U @ V.T) if self.params["hessian"] == "full" else None

        def product(Z):
            E = dp.W * (Z[:m] @ V.T + U @ Z[m:].T)
            if WR is None:
                return torch.cat([E @ V, E.T @ U])
            return torch.cat([E @ V - WR @ Z[m:], E.T @ U - WR.T @ Z[:m]])
        return product

    def _solve(self, H, b, D: Scaling, lam, tol):
        """CG on (H + λD) Z = b from Z = 0, preconditioned by D⁻¹ (the exact block diagonal of H + λD up to
        the factor 1 + λ, which CG ignores); returns Z and ZᵀHZ, the latter from CG's own residual.
        A direction of non-positive curvature (the full Hessian away from a minimum) ends CG at the last
        iterate, which still decreases the quadratic model (Steihaug); None if it is the first direction."""
        Z, Res = torch.zeros_like(b), b.clone()
        P = D.solve(Res)
        rz = float((Res * P).sum())
        stop = tol * float(torch.linalg.vector_norm(b))
        for _ in range(self.params["cg_max_iter"]):
            HP = H(P) + lam * D.mul(P)
            curvature = float((P * HP).sum())
            if curvature <= 0:
                if not Z.any():
                    return None
                break
            alpha = rz / curvature
            Z += alpha * P
            Res -= alpha * HP
            if float(torch.linalg.vector_norm(Res)) <= stop:
                break
            Pz = D.solve(Res)
            rz, rz_prev = float((Res * Pz).sum()), rz
            P = Pz + (rz / rz_prev) * P
        # (H + λD) Z = b − Res, so ZᵀHZ = Zᵀ(b − Res) − λ ZᵀDZ.
        return Z, float((Z * (b - Res)).sum()) - lam * float((Z * D.mul(Z)).sum())

    def step(self, dp, state):
        m = dp.shape[0]
        U, V = state.U, state.V
        D = marquardt_scaling(dp.W, U, V, block=self.params["scaling"] == "block")
        b_norm = float(torch.linalg.vector_norm(state.b))
        tol = min(FORCING_MAX, (b_norm / max(state.b0_norm, torch.finfo(dp.dtype).tiny)) ** 0.5)
        lam, nu = max(state.lam, LAMBDA_FLOOR), state.nu
        H = self.hessian_operator(dp, U, V)
        while lam <= LAMBDA_CEILING:
            solution = self._solve(H, state.b, D, lam, tol)
            if solution is not None:
                Z, zHz = solution
                predicted = 2 * float((Z * state.b).sum()) - zHz
                U1, V1 = rebalance(U + Z[:m], V + Z[m:])
                f1, b1 = self._value_and_b(dp, U1, V1)
                if f1 < state.f and predicted > 0:
                    gain = (state.f - f1) / predicted
                    lam *= max(1 / 3, 1 - (2 * gain - 1) ** 3)
                    return LMState(U1, V1, f1, b1, lam, 2.0, state.b0_norm)
            lam, nu = lam * nu, nu * 2
        raise SolverStop("converged", f"no decrease even with damping λ = {lam:.3g}: at a stationary point "
                                      "to working precision")

    def describe(self, state):
        return {"damping": state.lam}
