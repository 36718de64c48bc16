"""Singular value projection: projected gradient descent on the full matrix X = U Vᵀ.

    X ← P_r(X − η ∇f(X)),   ∇f(X) = −2 W ⊙ (A − X),

where P_r is the rank-r truncated SVD (Jain, Meka & Dhillon 2010). ∇f is Lipschitz with L = 2 max W, so
the safe step η₀ = 1 / (2 max W) never increases f: X₊ minimises ⟨∇f, Y − X⟩ + (L/2)‖Y − X‖² over rank-r Y,
X itself is feasible with value 0, and f(X₊) ≤ f(X) + that value. With η₀ the step is
X ← P_r(X + W̃ ⊙ (A − X)), W̃ = W / max W: Srebro & Jaakkola's EM update, exact in one step when W is
constant (X − η₀∇f = A, so P_r(A) is the Eckart–Young optimum). Heavy-tailed W makes η₀ tiny for most
entries, so by default a backtracking search tries η = t·η₀ with t doubling after every accepted step
and halving on failure, accepting the first η with the sufficient-decrease (majorisation) condition

    f(X₊) ≤ f(X) + ⟨∇f(X), X₊ − X⟩ + ‖X₊ − X‖² / (2η),

which the safe step t = 1 always meets, so every accepted step decreases f (monotone).

Cost per trial step: one truncated SVD of an m×n matrix (full: O(mn·min(m, n)); randomized: O(mn(r + p)))
plus O(mnr) to form X₊ and O(mn) for f; typically one or two trials per iteration. The state keeps the
projection's factors, so the trace needs no extra SVD.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from solvers.base import IterativeSolver
from solvers.linalg import balanced_factors, truncated_svd
from solvers.params import Choice
from problems.objective import weighted_squared_error

MAX_DOUBLINGS = 30
MAX_STEP = 2.0 ** MAX_DOUBLINGS  # cap on t = η / η₀; the search never needs more than W's dynamic range


@dataclass
class SVPState:
    U: torch.Tensor  # U Vᵀ = X, balanced factors of the last projection
    V: torch.Tensor
    X: torch.Tensor
    f: float         # f(X)
    t: float         # next trial step, in units of the safe step η₀ = 1 / (2 max W)
    wmax: float


class SVP(IterativeSolver):
    """Projected gradient on X with a rank-r SVD projection (see module docstring).

    Parameters: ``step`` "search" (backtracking from a doubling step, default) or "fixed" (η₀ = 1/(2 max W)
    every iteration, i.e. the EM update); ``svd`` "full" or "randomized" (Halko et al.; cheaper for r ≪ n
    when the spectrum decays).
    """

    name = "svp"
    family = "projected-gradient"
    parameters = {"step": Choice("search", ("search", "fixed")), "svd": Choice("full", ("full", "randomized"))}
    monotone = True
    not_monotone_with = {"svd": ("randomized",)}  # the bound holds for the exact projection only
    exact_on = frozenset({"constant"})

    def start(self, dp, U, V):
        X = U @ V.T
        return SVPState(U, V, X, float(weighted_squared_error(dp.A - X, dp.W)), 1.0, float(dp.W.max()))

    def _project(self, dp, Y):
        P, s, Q = truncated_svd(Y, dp.rank, method=self.params["svd"], generator=dp.generator)
        return P, s, Q, (P * s) @ Q.T

    def step(self, dp, state):
        G = dp.W * (dp.A - state.X)  # −∇f / 2
        t = state.t
        for _ in range(MAX_DOUBLINGS + 1):  # t is a power of two in [1, MAX_STEP]: the safe step t = 1 ends it
            P, s, Q, X = self._project(dp, state.X + (t / state.wmax) * G)
            f = float(weighted_squared_error(dp.A - X, dp.W))
            D = X - state.X
            bound = state.f - 2 * float((G * D).sum()) + state.wmax / t * float((D * D).sum())
            if t <= 1.0 or f <= bound:
                break
            t /= 2
        grow = 2.0 if self.params["step"] == "search" else 1.0
        return SVPState(*balanced_factors(P, s, Q), X, f, min(t * grow, MAX_STEP), state.wmax)

    def describe(self, state):
        return {"step_scale": state.t}
