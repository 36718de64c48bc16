"""The WLRA objective, shared by problems, solvers and the trace.

    f(U, V) = Σ_ij W_ij (A_ij − (U Vᵀ)_ij)²

Cost O(mnk) for the product plus O(mn) for the weighted sum. Rows are processed in chunks so the residual
never needs more than ``chunk_elems`` entries of scratch memory, and sums accumulate in float64 whatever the
working dtype, so float32 runs are measured to float64 rounding of their own iterates.
"""
from __future__ import annotations

import torch

DEFAULT_CHUNK_ELEMS = 1 << 24  # 16M entries: 64 MiB of float32 scratch


def weighted_squared_error(A: torch.Tensor, W: torch.Tensor, U: torch.Tensor | None = None,
                           V: torch.Tensor | None = None, *, chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> float:
    """Σ W (A − U Vᵀ)² as a Python float; with U = V = None, Σ W A² (the zero-matrix objective)."""
    m, n = A.shape
    rows = max(1, chunk_elems // max(n, 1))
    total = torch.zeros((), dtype=torch.float64, device=A.device)
    for i in range(0, m, rows):
        R = A[i:i + rows]
        if U is not None:
            R = R - U[i:i + rows] @ V.T
        total += (W[i:i + rows] * R * R).sum(dtype=torch.float64)
    return float(total)


def value_and_grad(A: torch.Tensor, W: torch.Tensor, U: torch.Tensor, V: torch.Tensor):
    """f and its gradients for the factored methods, sharing one residual:

        R = A − U Vᵀ,   f = Σ W ⊙ R²,   ∇_U f = −2 (W ⊙ R) V,   ∇_V f = −2 (W ⊙ R)ᵀ U.

    Cost: three m×n×r products, O(mnr), and two m×n temporaries. Leading batch dimensions (B, m, n) are B
    problems at once. Returns (f as a float64 tensor of the batch shape — 0-d for one problem — on the device,
    no host sync; ∇_U, ∇_V).
    """
    R = A - U @ V.mT
    WR = W * R
    f = (WR * R).sum(dim=(-2, -1), dtype=torch.float64)
    return f, -2 * (WR @ V), -2 * (WR.mT @ U)
