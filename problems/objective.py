"""The WLRA objective, the one definition every problem, solver, trace and store value is measured by.

    f(U, V) = Σ_ij W_ij (A_ij − (U Vᵀ)_ij)²

Cost O(mnk) for the product plus O(mn) for the weighted sum. Rows are processed in chunks so the residual
never needs more than ``chunk_elems`` entries of scratch memory, and sums accumulate in float64 whatever the
working dtype, so float32 runs are measured to float64 rounding of their own iterates. Leading batch
dimensions, (B, m, n) with U (B, m, k) and V (B, n, k), are B problems at once.
"""
from __future__ import annotations

import torch

DEFAULT_CHUNK_ELEMS = 1 << 24  # 16M entries: 64 MiB of float32 scratch


def weighted_squared_error(A: torch.Tensor, W: torch.Tensor, U: torch.Tensor | None = None,
                           V: torch.Tensor | None = None, *, chunk_elems: int = DEFAULT_CHUNK_ELEMS,
                           dtype: torch.dtype | None = None) -> torch.Tensor:
    """Σ W (A − U Vᵀ)² per problem, as a float64 tensor of the batch shape (0-d for one m×n problem) on A's
    device; with U = V = None, Σ W A² (the zero matrix's objective). float(...) of a 0-d result is the value.
    ``dtype``: the element-wise arithmetic's dtype, each chunk cast to it (None: the inputs' own)."""
    m, n = A.shape[-2:]
    batch = A.shape[:-2]
    rows = max(1, chunk_elems // max(n * batch.numel(), 1))
    total = torch.zeros(batch, dtype=torch.float64, device=A.device)
    for i in range(0, m, rows):
        R, Wc = A[..., i:i + rows, :], W[..., i:i + rows, :]
        if dtype is not None:
            R, Wc = R.to(dtype), Wc.to(dtype)
        if U is not None:
            R = R - U[..., i:i + rows, :] @ V.mT
        total += (Wc * R * R).sum(dim=(-2, -1), dtype=torch.float64)
    return total


def activation_squared_error(A: torch.Tensor, C: torch.Tensor, U: torch.Tensor | None = None,
                             V: torch.Tensor | None = None) -> torch.Tensor:
    """tr(R C Rᵀ) with R = A − U Vᵀ (R = A when U = V = None), C the n×n input Gram: the squared output error
    ‖R X‖_F² / T of a layer whose T inputs X have Gram C = X Xᵀ / T. In float64, as a 0-d tensor on A's device.
    Cost O(mn² + mnk) (the residual is formed; no cancellation between ‖A X‖² and the fit's terms)."""
    R = A.double() if U is None else A.double() - U.double() @ V.double().T
    return ((R @ C.double()) * R).sum()
