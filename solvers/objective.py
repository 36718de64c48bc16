"""The objective's gradients, shared by the factored solvers (the objective itself is ``problems.objective``).

    R = A − U Vᵀ,   f = Σ W ⊙ R²,   ∇_U f = −2 (W ⊙ R) V,   ∇_V f = −2 (W ⊙ R)ᵀ U.
"""
from __future__ import annotations

import torch


def value_and_grad(A: torch.Tensor, W: torch.Tensor, U: torch.Tensor, V: torch.Tensor):
    """f and its gradients, sharing one residual. Cost: three m×n×r products, O(mnr), and two m×n
    temporaries. Leading batch dimensions (B, m, n) are B problems at once. Returns (f as a float64 tensor of
    the batch shape — 0-d for one problem — on the device, no host sync; ∇_U, ∇_V)."""
    R = A - U @ V.mT
    WR = W * R
    f = (WR * R).sum(dim=(-2, -1), dtype=torch.float64)
    return f, -2 * (WR @ V), -2 * (WR.mT @ U)
