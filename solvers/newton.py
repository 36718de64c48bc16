"""Levenberg–Marquardt (damped Gauss–Newton) on the factors, with matrix-free preconditioned CG.

Write the objective as a sum of squares, f(U, V) = ‖ρ‖², ρ = √W ⊙ (A − U Vᵀ). Its Jacobian maps a step
Z = (dU, dV) to J Z = √W ⊙ (dU Vᵀ + U dVᵀ), so with E = W ⊙ (dU Vᵀ + U dVᵀ)

    H Z = Jᵀ J Z = (E V, Eᵀ U),        b = Jᵀ ρ = ((W ⊙ R) V, (W ⊙ R)ᵀ U) = −∇f / 2,   R = A − U Vᵀ,

each product O(mnr); the ((m+n)r)² matrix H is never formed. One iteration solves (H + λI) Z = b by
conjugate gradients to a relative residual min(0.1, √(‖b‖/‖b₀‖)) (inexact Newton: superlinear near a
zero-residual solution), preconditioned by the exact r×r diagonal blocks of H + λI — row i of U couples
only with itself, H_i = Vᵀ diag(W_i,:) V (the ALS normal matrices), likewise for the rows of V — or by H's
diagonal. The step is accepted only when f decreases, so the method is monotone; the damping follows
Nielsen (1999): with gain ratio ϱ = (f − f(U + dU, V + dV)) / (2 Zᵀb − ZᵀHZ), an accepted step sets
λ ← λ·max(1/3, 1 − (2ϱ − 1)³), a rejected one λ ← λ·ν, ν ← 2ν. λ > 0 also removes the r² directions
(U G, −V Gᵀ) along which U Vᵀ does not change and H is singular; after each accepted step the factors are
rebalanced (U ᵀU = VᵀV) so the identity damping treats U and V alike.

Cost per iteration: O(mnr²) for the block preconditioner (one m×n by n×r² product per side; O(mnr) for
"diagonal") and its Cholesky factors O((m + n) r³), plus O(mnr) per CG iteration and per trial step.
Memory: O((m + n) r²) for the blocks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from solvers.base import IterativeSolver, SolverStop
from solvers.linalg import rebalance
from solvers.objective import value_and_grad

FORCING_MAX = 0.1     # CG relative residual never looser than this
LAMBDA_FLOOR = 1e-12  # λ ≥ LAMBDA_FLOOR · max diag(H): keeps the gauge directions damped
LAMBDA_CEILING = 1e16  # λ beyond this · max diag(H) with no decrease: nothing left to gain


@dataclass
class LMState:
    U: torch.Tensor
    V: torch.Tensor
    f: float
    b: torch.Tensor      # −∇f / 2 stacked as [(W⊙R) V; (W⊙R)ᵀ U], (m + n) × r
    lam: float
    nu: float
    b0_norm: float


def _stacked_blocks(W, U, V, block: bool):
    """Diagonal blocks of H: rows i of U get Vᵀ diag(W_i) V, rows j of V get Uᵀ diag(W_:j) U
    ((m+n)×r×r), or just their diagonals W V², Wᵀ U² ((m+n)×r) when ``block`` is False."""
    if not block:
        return torch.cat([W @ (V * V), W.T @ (U * U)])
    r = U.shape[1]
    outer = lambda F: (F[:, :, None] * F[:, None, :]).reshape(F.shape[0], r * r)  # noqa: E731
    return torch.cat([W @ outer(V), W.T @ outer(U)]).reshape(-1, r, r)


class Newton(IterativeSolver):
    """Levenberg–Marquardt with matrix-free preconditioned CG (see module docstring).

    Parameters: ``damping`` τ, the initial λ = τ · max diag(H) (Nielsen's choice); ``cg_max_iter`` CG
    iterations per linear solve; ``preconditioner`` "block" (exact r×r diagonal blocks, default) or
    "diagonal" (cheaper in memory for large r).
    """

    name = "newton"
    family = "second-order"
    parameters = {"damping": 1e-3, "cg_max_iter": 100, "preconditioner": "block"}
    monotone = True
    exact_on = frozenset({"planted"})
    default_max_iter = 200

    def check_params(self):
        if not self.params["damping"] > 0:
            raise ValueError(f"damping must be positive, got {self.params['damping']}")
        if self.params["cg_max_iter"] < 1:
            raise ValueError(f"cg_max_iter must be at least 1, got {self.params['cg_max_iter']}")
        if self.params["preconditioner"] not in ("block", "diagonal"):
            raise ValueError(f"preconditioner must be 'block' or 'diagonal', got {self.params['preconditioner']!r}")

    def start(self, dp, U, V):
        U, V = rebalance(U, V)
        f, b = self._value_and_b(dp, U, V)
        diag = _stacked_blocks(dp.W, U, V, block=False)
        lam = self.params["damping"] * float(diag.max())
        return LMState(U, V, f, b, lam, 2.0, float(torch.linalg.vector_norm(b)))

    @staticmethod
    def _value_and_b(dp, U, V):
        f, gU, gV = value_and_grad(dp.A, dp.W, U, V)
        return float(f), torch.cat([gU, gV]) / -2

    def _hessian_product(self, dp, U, V, Z):
        m = U.shape[0]
        E = dp.W * (Z[:m] @ V.T + U @ Z[m:].T)
        return torch.cat([E @ V, E.T @ U])

    def _solve(self, dp, state, blocks, lam, tol):
        """Preconditioned CG on (H + λI) Z = b from Z = 0; returns Z and ZᵀHZ (from CG's own residual)."""
        eye = torch.eye(dp.rank, dtype=dp.dtype, device=dp.device)
        if blocks.dim() == 3:
            L = torch.linalg.cholesky(blocks + lam * eye)
            precondition = lambda Rk: torch.cholesky_solve(Rk[:, :, None], L)[:, :, 0]  # noqa: E731
        else:
            inv = 1 / (blocks + lam)
            precondition = lambda Rk: inv * Rk  # noqa: E731
        b = state.b
        Z, Res = torch.zeros_like(b), b.clone()
        P = precondition(Res)
        rz = float((Res * P).sum())
        stop = tol * float(torch.linalg.vector_norm(b))
        for _ in range(self.params["cg_max_iter"]):
            HP = self._hessian_product(dp, state.U, state.V, P) + lam * P
            alpha = rz / float((P * HP).sum())
            Z += alpha * P
            Res -= alpha * HP
            if float(torch.linalg.vector_norm(Res)) <= stop:
                break
            Pz = precondition(Res)
            rz, rz_prev = float((Res * Pz).sum()), rz
            P = Pz + (rz / rz_prev) * P
        # (H + λI) Z = b − Res, so ZᵀHZ = Zᵀ(b − Res) − λ‖Z‖².
        return Z, float((Z * (b - Res)).sum()) - lam * float((Z * Z).sum())

    def step(self, dp, state):
        m = dp.shape[0]
        U, V = state.U, state.V
        blocks = _stacked_blocks(dp.W, U, V, block=self.params["preconditioner"] == "block")
        scale = float((blocks.diagonal(dim1=-2, dim2=-1) if blocks.dim() == 3 else blocks).max())
        b_norm = float(torch.linalg.vector_norm(state.b))
        tol = min(FORCING_MAX, (b_norm / max(state.b0_norm, torch.finfo(dp.dtype).tiny)) ** 0.5)
        lam, nu = max(state.lam, LAMBDA_FLOOR * scale), state.nu
        while lam <= LAMBDA_CEILING * scale:
            Z, zHz = self._solve(dp, state, blocks, lam, tol)
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
