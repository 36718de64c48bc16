"""SGD with (Polyak) momentum on the factors (U, V), full batch or row-block minibatches.

    velocity_X ← μ velocity_X + (lr / L_X) ∇_X f,   X ← X − velocity_X,    X ∈ {U, V}

with L_U, L_V bounds on the Hessian blocks at the current point, recomputed every iteration
(``first_order.Curvature``: L_U = 2 max_i min(max_j W_ij ‖V‖₂², Σ_j W_ij ‖v_j‖²) + 2 √(max(W) f), L_V
symmetrically), so ``lr`` is dimensionless and the default works unchanged whatever the scale of W and A.
lr = 1 is the classical step 1/L; heavy ball on a quadratic is stable for lr < 2(1 + μ). The rate halves after
``patience`` epochs without a new lowest objective (``first_order.Plateau``). With row blocks, f and ∇_V f are
the block's unbiased estimates and the bounds are the block's (``Curvature`` with ``rows``).
Cost per iteration: one gradient, O(|I| n r) for a block of |I| rows (O(mnr) full batch), plus O(|I| n + (m + n) r²).
"""
from __future__ import annotations

import torch

from solvers.first_order import BATCH_ROWS, MOMENTUM, PATIENCE, MomentumSolver, MomentumState, heavy_ball
from solvers.params import Real


class SGD(MomentumSolver):
    """(Stochastic) gradient descent with momentum; see the module docstring for the step size."""

    name = "sgd"
    parameters = {"lr": Real(1.0, gt=0, doc="step in units of 1/L_U, 1/L_V"), "momentum": MOMENTUM,
                  "batch_rows": BATCH_ROWS, "patience": PATIENCE}
    exact_on = frozenset({"constant", "separable", "planted", "completion"})

    def prepare(self, dp, state: MomentumState) -> None:
        state.buffers["U"] = torch.zeros_like(state.U)
        state.buffers["V"] = torch.zeros_like(state.V)

    def update(self, dp, state: MomentumState, f, grad_u, grad_v) -> None:
        lu, lv = state.curvature(state.U, state.V, f, state.rows)
        mu = self.params["momentum"]
        state.U = heavy_ball(state.U, state.buffers["U"], grad_u, state.lr / lu, mu)
        state.V = heavy_ball(state.V, state.buffers["V"], grad_v, state.lr / lv, mu)
