"""Adam (Kingma & Ba 2015) on the factors (U, V) of Σ W ⊙ (A − U Vᵀ)², full batch or row-block minibatches.

Update per block X ∈ {U, V} with gradient g (see ``solvers.first_order``):
    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   X ← X − α · m̂ / (√v̂ + ε·g₀)
with bias corrections m̂ = m / (1 − β₁ᵏ), v̂ = v / (1 − β₂ᵏ).

Scale-free defaults (so they work unchanged on real Fisher weights):
- the step is α = lr · s with s = (‖A‖_F / √(mnr))^½ the typical entry of balanced factors (Adam moves each
  coordinate by about α per step, so ``lr`` is a fraction of the factors' own size);
- ε is relative: ε·g₀ with g₀ the RMS of the first gradient, so rescaling W does not change the iterates;
- the rate halves after ``patience`` epochs without a new lowest objective (``first_order.Plateau``), which
  lets full-batch Adam settle instead of hovering at a distance ∝ α from the minimum.
Cost per iteration: one gradient, O(|I| n r) for a block of |I| rows (O(mnr) full batch), plus O((m + n) r).
"""
from __future__ import annotations

import torch

from solvers.first_order import MomentumSolver, MomentumState, factor_scale


class Adam(MomentumSolver):
    """Adam on (U, V); see the module docstring for the update and how ``lr`` is scaled."""

    name = "adam"
    parameters = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "batch_rows": 0, "patience": 200}
    exact_on = frozenset({"constant", "separable", "planted", "completion"})

    def prepare(self, dp, state: MomentumState) -> None:
        state.extra["scale"] = factor_scale(dp)
        for key in ("mU", "mV", "vU", "vV"):
            state.buffers[key] = torch.zeros_like(state.U if key.endswith("U") else state.V)

    def adam_steps(self, state: MomentumState, grad_u, grad_v) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance the moments and return Adam's displacements (ΔU, ΔV) for this iteration, O((m + n) r)."""
        b1, b2, k, buf = self.params["beta1"], self.params["beta2"], state.k, state.buffers
        if "eps" not in state.extra:  # ε relative to the first gradient's RMS (scale invariance)
            rms = torch.cat([grad_u.flatten(), grad_v.flatten()]).square().mean().sqrt()
            state.extra["eps"] = self.params["eps"] * max(float(rms), torch.finfo(grad_u.dtype).tiny)
        alpha = state.lr * state.extra["scale"]
        out = []
        for g, m, v in ((grad_u, buf["mU"], buf["vU"]), (grad_v, buf["mV"], buf["vV"])):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / (1 - b2 ** k)).sqrt_().add_(state.extra["eps"])
            out.append(-(alpha / (1 - b1 ** k)) * m / denom)
        return out[0], out[1]

    def update(self, dp, state: MomentumState, f, grad_u, grad_v) -> None:
        du, dv = self.adam_steps(state, grad_u, grad_v)
        state.U, state.V = state.U + du, state.V + dv
