"""Gradient descent on the factors (U, V) with a backtracking (Armijo) line search: monotone.

One iteration, with x = (U, V), g = ∇f(x) = (−2 (W⊙R) V, −2 (W⊙R)ᵀ U), R = A − U Vᵀ:
    t ← trial step;  while f(x − t g) > f(x) − c t ‖g‖²:  t ← ρ t;   x ← x − t g.
Every accepted step satisfies the sufficient-decrease (Armijo) condition, so f never increases.

The trial step is the Barzilai–Borwein step, alternating BB1 = sᵀs / sᵀy and BB2 = sᵀy / yᵀy (s, y: the last
change of x and of g), which adapts to the local curvature and usually passes the test at once; when sᵀy ≤ 0
(or on the first iteration and after balancing) it is ``lr`` / L with L = max(L_U, L_V) the curvature bound of
``first_order.Curvature`` (scale-free), or twice the last accepted step if that is larger. Every
``balance_every`` iterations (default 10; 0: never) the factors are rebalanced (``solvers.linalg.rebalance``: same
U Vᵀ, UᵀU = VᵀV), which leaves f unchanged and evens out the curvature of the two blocks.

The default ``tol`` is 0: BB steps make erratic progress (on heavy-tailed W a step that gains 1e-12 of f can be
followed by ones that gain 1e-9), so one small decrease is no sign of convergence. The run stops with
"converged" when no step above rounding level decreases f (or f stops changing, or ``backtrack`` shrank the trial
step 2^100-fold without a sufficient decrease: every line search is bounded), else at ``max_iter``.
Cost per iteration: one value-and-gradient, O(mnr), per line-search trial (usually one), plus O(mn + (m + n) r²).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from solvers.base import SolverStop
from solvers.first_order import Curvature, FirstOrderSolver, inner
from solvers.linalg import rebalance
from solvers.objective import value_and_grad
from solvers.params import Int, Real


MAX_SHRINK = 2.0 ** -100  # a line search that shrinks its trial step this much without a decrease gives up


@dataclass
class GDState:
    U: torch.Tensor
    V: torch.Tensor
    f: float
    grad_u: torch.Tensor
    grad_v: torch.Tensor
    curvature: Curvature
    step: float | None = None  # last accepted step; None: restart from the curvature bound
    k: int = 0
    previous: tuple | None = None  # (U, V, grad_u, grad_v) before the last step, for the BB step



class GD(FirstOrderSolver):
    """Gradient descent with Barzilai–Borwein trial steps and an Armijo backtracking line search."""

    name = "gd"
    parameters = {"lr": Real(1.0, gt=0, doc="fallback step, in units of 1/L"),
                  "armijo": Real(1e-4, gt=0, lt=1, doc="sufficient-decrease constant c"),
                  "backtrack": Real(0.5, gt=0, lt=1, doc="step reduction ρ per failed trial"),
                  "balance_every": Int(10, ge=0, doc="iterations between rebalancings; 0: never")}
    monotone = True
    exact_on = frozenset({"constant", "separable", "planted", "completion"})
    default_tol = 0.0

    def start(self, dp, U, V):
        f, gu, gv = value_and_grad(dp.A, dp.W, U, V)
        return GDState(U, V, float(f), gu, gv, Curvature(dp.W))

    def trial_step(self, s: GDState) -> float:
        """BB1/BB2 alternately when the curvature along the last step is positive, else lr / L."""
        if s.previous is not None:
            ds = (s.U - s.previous[0], s.V - s.previous[1])
            dy = (s.grad_u - s.previous[2], s.grad_v - s.previous[3])
            sy, denominator = inner(ds, dy), (inner(ds, ds) if s.k % 2 else inner(dy, dy))
            if sy > 0 and denominator > 0:
                return denominator / sy if s.k % 2 else sy / denominator
        bound = self.params["lr"] / max(s.curvature(s.U, s.V, s.f))
        return max(bound, 2 * s.step) if s.step is not None else bound

    def max_trials(self) -> int:
        """Line-search trials before giving up: enough to shrink the trial step by ``MAX_SHRINK``."""
        return math.ceil(math.log(MAX_SHRINK) / math.log(self.params["backtrack"]))

    def step(self, dp, s: GDState) -> GDState:
        g2 = inner((s.grad_u, s.grad_v), (s.grad_u, s.grad_v))
        if not math.isfinite(g2):
            raise SolverStop("diverged", f"the gradient's squared norm is {g2:.3g}: no step can be measured")
        t = self.trial_step(s)
        c, rho = self.params["armijo"], self.params["backtrack"]
        size = inner((s.U, s.V), (s.U, s.V)) ** 0.5
        eps = torch.finfo(dp.dtype).eps
        for _ in range(self.max_trials()):
            U, V = s.U - t * s.grad_u, s.V - t * s.grad_v
            f, gu, gv = value_and_grad(dp.A, dp.W, U, V)
            f = float(f)
            if f <= s.f - c * t * g2:
                break
            t *= rho
            if t * g2 ** 0.5 <= eps * size:
                raise SolverStop("converged", "line search found no decrease above rounding level")
        else:
            raise SolverStop("converged", f"line search found no sufficient decrease in {self.max_trials()} "
                                          f"trials (the step shrank {1 / MAX_SHRINK:.3g}-fold): no progress possible")
        k = s.k + 1
        previous = (s.U, s.V, s.grad_u, s.grad_v)
        every = self.params["balance_every"]
        if every and k % every == 0:
            U, V = rebalance(U, V)
            f, gu, gv = value_and_grad(dp.A, dp.W, U, V)
            f, previous = float(f), None
        return GDState(U, V, f, gu, gv, s.curvature, t, k, previous)
