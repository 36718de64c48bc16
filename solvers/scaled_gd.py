"""Scaled gradient descent on (U, V) in a weighted metric, with the exact (quartic) line search: monotone.

ScaledGD (Tong, Ma & Chi 2021) preconditions the factored gradient by the other factor's Gram matrix,
    U ← U − η ∇_U f (VᵀV)⁻¹,   V ← V − η ∇_V f (UᵀU)⁻¹,
which makes the iteration invariant to the factorisation's gauge (U G, V G⁻ᵀ) and its rate independent of the
condition number of U Vᵀ — for unweighted problems. With Fisher weights the curvature of row i of U is
Vᵀ diag(W_i) V, not VᵀV, and varies by orders of magnitude between rows, so here the step is
    (U, V) ← (U, V) + t P⁻¹ G,     G = −½∇f = ((W⊙R) V, (W⊙R)ᵀ U),
with P the grouped weighted metric of ``solvers.grouped_metric`` (``metric="grouped"``; ``metric="gram"``: the
unweighted (VᵀV)⁻¹, (UᵀU)⁻¹ of ScaledGD) and t the exact minimiser of f along the direction
(``solvers.quartic``): no learning rate, and f never increases. The residual R is carried from step to step
(R ← R − t E₁ − t² E₂) and recomputed exactly, with the metric, every ``refresh`` iterations.

``ScaledCG`` (``solvers.scaled_cg``) reuses this loop with conjugate directions.
Cost per iteration: E₁, E₂ (6mnr FLOPs), the gradient (4mnr), P⁻¹G (2(m + n)r²), O(mn) element-wise work;
a refresh adds the residual (2mnr) and the metric's build.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from solvers.base import SolverStop
from solvers.first_order import FirstOrderSolver
from solvers.grouped_metric import GROUPS, REFRESH, GroupedMetric
from solvers.objective import stacked_half_gradient, weighted_residual, weighted_sum
from solvers.params import Choice
from solvers.quartic import coefficients, line_products, minimiser


@dataclass
class LineState:
    X: torch.Tensor     # (m + n) × r: U on top of V, in the metric's grouped order
    m: int
    A: torch.Tensor     # A and W in grouped order
    W: torch.Tensor
    R: torch.Tensor     # residual A − U Vᵀ, carried between refreshes
    WR: torch.Tensor    # W ⊙ R
    f: float
    G: torch.Tensor     # −½∇f, stacked like X
    PG: torch.Tensor    # P⁻¹ G
    metric: GroupedMetric
    D: torch.Tensor | None = None  # the last search direction (None after a refresh)
    PG_prev: torch.Tensor | None = None  # P⁻¹G and ⟨G, P⁻¹G⟩ where D was chosen (conjugate directions)
    gpg_prev: float = 0.0
    k: int = 0

    @property
    def U(self) -> torch.Tensor:
        return self.X[:self.m]

    @property
    def V(self) -> torch.Tensor:
        return self.X[self.m:]


METRIC = Choice("grouped", ("grouped", "gram"), doc="grouped: weighted (grouped_metric); gram: ScaledGD's (VᵀV)⁻¹")


class ScaledGD(FirstOrderSolver):
    """Gradient descent preconditioned by the (weighted) metric, exact line search; see the module docstring."""

    name = "scaled_gd"
    family = "scaled"
    parameters = {"metric": METRIC, "groups": GROUPS, "refresh": REFRESH}
    monotone = True
    exact_on = frozenset({"constant", "separable", "planted", "completion"})

    @classmethod
    def flops(cls, m: int, n: int, r: int) -> float:
        """E₁ and E₂ (6mnr), the two gradient products (4mnr) and the metric's 2(m + n)r²."""
        return 10.0 * m * n * r + 2.0 * (m + n) * r * r

    def start(self, dp, U, V):
        weighted = self.params.get("metric", "grouped") == "grouped"
        metric = GroupedMetric(dp.W, self.params["groups"], dp.generator, weighted=weighted)
        A, X = metric.permute(dp.A), metric.stack(U, V)
        s = LineState(X=X, m=U.shape[0], A=A, W=metric.W, R=torch.empty_like(A), WR=torch.empty_like(A), f=0.0,
                      G=torch.empty_like(X), PG=torch.empty_like(X), metric=metric)
        self.refresh(s)
        return s

    def refresh(self, s: LineState) -> None:
        """Exact residual, gradient and metric at the current factors; forget the last direction."""
        s.metric.build(s.X)
        f, _ = weighted_residual(s.A, s.W, s.U, s.V, s.R, s.WR)
        s.f, s.D = float(f), None
        self._gradient(s)

    def _gradient(self, s: LineState) -> None:
        stacked_half_gradient(s.WR, s.X, s.G, s.metric.blocks)
        s.PG = s.metric.apply_stacked(s.G)

    def direction(self, s: LineState) -> torch.Tensor:
        """The search direction at s: here P⁻¹G."""
        return s.PG

    def step(self, dp, s: LineState) -> LineState:
        every = self.params["refresh"]
        if every and s.k and s.k % every == 0:
            self.refresh(s)
        D = self.direction(s)
        E1, E2 = line_products(s.U, s.V, D[:s.m], D[s.m:])
        t, decrease = minimiser(coefficients(s.W, s.WR, E1, E2))
        if decrease >= 0:
            raise SolverStop("converged", "the exact line search found no decrease")
        s.R.sub_(E1, alpha=t).sub_(E2, alpha=t * t)
        s.X.add_(D, alpha=t)
        torch.mul(s.W, s.R, out=s.WR)
        s.f = float(weighted_sum(s.WR, s.R))
        s.D, s.k = D, s.k + 1
        self._gradient(s)
        return s

    def factors(self, s: LineState):
        return s.metric.unstack(s.X)
