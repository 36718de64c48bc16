"""EM imputation for WLRA (Srebro & Jaakkola 2003), with Nesterov or Anderson acceleration.

With W̃ = W / max W ∈ [0, 1], one EM step fills the low-weight entries with the current estimate and projects:

    X ← g(X) = P_r(X + W̃ ⊙ (A − X)),    P_r = truncated SVD to rank r.

It is a majorise–minimise step: f(Y)/max W = Σ W̃ (A − Y)² ≤ ‖X + W̃ ⊙ (A − X) − Y‖_F² + c(X), with equality
at Y = X, so f never increases with an exact SVD. Its weakness is speed: where W̃ ≈ 0 (heavy-tailed W, whose
maximum dwarfs the bulk) the entry barely moves per step, and EM needs many times more iterations than ALS
(tests/test_em.py and bench/als_perf.py measure it).

``accel`` (Tuzhilina & Hastie 2021 study both for this map):
- "nesterov": apply g at Y = X_k + (t − 1)/(t + 2) (X_k − X_{k−1}), t = steps since the last restart;
- "anderson": type-II Anderson mixing of the last ``depth`` + 1 pairs (y_i, g(y_i)):
  Y = g_k − ΔG γ, γ = argmin ‖F_k − ΔF γ‖, F_i = g(y_i) − y_i;
- both with an adaptive restart (O'Donoghue & Candès): a step whose f exceeds the current f is replaced by
  the plain EM step from the current point and the history cleared, so the accepted iterates stay monotone.
``svd``: "full" (LAPACK thin SVD) or "randomized" (Halko et al., ``solvers.linalg.truncated_svd``) for large
matrices; with the randomised SVD the projection is approximate, so monotonicity is no longer guaranteed.

Cost per iteration: one truncated SVD, O(mn·min(m, n)) full or O(mnr(2q + 2)) randomised, plus O(mn)
element-wise work (O(mn·depth) for Anderson; a restart costs a second SVD). Memory: a few m×n matrices
(2·(depth + 1) more for Anderson).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from solvers.base import IterativeSolver
from solvers.linalg import balanced_factors, truncated_svd
from solvers.params import Choice, Int
from problems.objective import weighted_squared_error


@dataclass
class EMState:
    U: torch.Tensor
    V: torch.Tensor
    X: torch.Tensor                      # U Vᵀ, the accepted rank-r iterate
    f: float                             # its objective
    Wt: torch.Tensor                     # W / max W
    previous: torch.Tensor | None = None  # Nesterov: the accepted iterate before X
    since_restart: int = 0
    history: list = field(default_factory=list)  # Anderson: (y_i, g(y_i)) pairs, oldest first
    restarts: int = 0


class EM(IterativeSolver):
    """Srebro–Jaakkola EM with optional Nesterov/Anderson acceleration (see module docstring)."""

    name = "em"
    family = "em"
    parameters = {"accel": Choice("none", ("none", "nesterov", "anderson")),
                  "svd": Choice("full", ("full", "randomized")),
                  "depth": Int(5, ge=1, doc="Anderson: pairs mixed")}
    monotone = True
    not_monotone_with = {"svd": ("randomized",)}  # an approximate projection voids the majorise–minimise bound
    exact_on = frozenset({"constant", "completion"})
    default_max_iter = 2000

    def _em_map(self, dp, Wt: torch.Tensor, Y: torch.Tensor):
        """g(Y) = P_r(Y + W̃ ⊙ (A − Y)) as balanced factors and the dense product."""
        P, s, Q = truncated_svd(torch.addcmul(Y, Wt, dp.A - Y), dp.rank, method=self.params["svd"],
                                generator=dp.generator)
        U, V = balanced_factors(P, s, Q)
        return U, V, U @ V.T

    def start(self, dp, U, V):
        X = U @ V.T
        return EMState(U, V, X, float(weighted_squared_error(dp.A - X, dp.W)), dp.W / dp.W.max())

    def _extrapolate(self, state: EMState) -> torch.Tensor:
        accel = self.params["accel"]
        if accel == "nesterov" and state.previous is not None:
            t = state.since_restart
            return state.X + (t - 1) / (t + 2) * (state.X - state.previous)
        if accel == "anderson" and len(state.history) >= 2:
            ys = torch.stack([y.flatten() for y, _ in state.history])
            gs = torch.stack([g.flatten() for _, g in state.history])
            F = gs - ys
            dF, dG = F[1:] - F[:-1], gs[1:] - gs[:-1]        # (k, mn)
            M = (dF @ dF.T).double()
            M += 1e-12 * M.trace() * torch.eye(len(M), dtype=M.dtype, device=M.device)
            gamma = torch.linalg.solve(M, (dF @ F[-1]).double()).to(F.dtype)
            return (gs[-1] - gamma @ dG).view_as(state.X)
        return state.X

    def step(self, dp, state: EMState) -> EMState:
        Y = self._extrapolate(state)
        U, V, X = self._em_map(dp, state.Wt, Y)
        f = float(weighted_squared_error(dp.A - X, dp.W))
        if Y is not state.X and f > state.f:      # adaptive restart: plain EM step from the current point
            state.previous, state.since_restart, state.history = None, 0, []
            state.restarts += 1
            Y = state.X
            U, V, X = self._em_map(dp, state.Wt, Y)
            f = float(weighted_squared_error(dp.A - X, dp.W))
        if self.params["accel"] == "anderson":
            state.history = (state.history + [(Y, X)])[-(self.params["depth"] + 1):]
        state.previous, state.since_restart = state.X, state.since_restart + 1
        state.U, state.V, state.X, state.f = U, V, X, f
        return state

    def describe(self, state: EMState) -> dict:
        return {"restarts": state.restarts} if self.params["accel"] != "none" else {}
