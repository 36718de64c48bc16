"""Calibration statistics of a Linear layer's input, for the activation-aware objective and baselines.

For a layer y = A x (A: m×n, the weight) and calibration inputs x_1 … x_T ∈ R^n (T tokens), stacked as the
columns of X (n×T):

    gram      C = (1/T) Σ_t x_t x_tᵀ = X Xᵀ / T        (n×n, symmetric positive semi-definite)
    abs_mean  μ_j = (1/T) Σ_t |x_tj|                   (n, non-negative)

The activation objective of a factorisation is the layer's output error on those tokens,
‖(A − U Vᵀ) X‖_F² / T = tr(R C Rᵀ) with R = A − U Vᵀ; it depends on the inputs only through C, and the
per-token normalisation only rescales it (``Problem.activation_error`` reports it relative to ‖A X‖²).
``problems.lm.activations`` measures these on real text; ``problems.synthetic.with_inputs`` draws seeded ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from problems.arrays import as_float_tensor

SYMMETRY_TOL = 1e-5  # |C − Cᵀ| allowed, relative to max |C|, before C is called not symmetric


@dataclass(frozen=True, eq=False)
class InputStatistics:
    """C (``gram``, n×n) and μ (``abs_mean``, n) of a layer's inputs over ``tokens`` calibration tokens (see the
    module docstring). Validated on construction: finite; C square, symmetric (to ``SYMMETRY_TOL``; stored
    exactly symmetrised) with a non-negative diagonal and a positive trace; μ ≥ 0 of length n; both of one
    dtype (μ cast to C's)."""

    gram: Any
    abs_mean: Any
    tokens: int = 0  # T; 0 when unknown

    def __post_init__(self):
        C = as_float_tensor(self.gram, "input gram")
        mu = as_float_tensor(self.abs_mean, "input abs_mean", dim=1).to(C.dtype)
        n = C.shape[0]
        if C.shape != (n, n):
            raise ValueError(f"input gram must be square, got shape {tuple(C.shape)}")
        if mu.shape != (n,):
            raise ValueError(f"input abs_mean has {mu.shape[0]} entries but the gram is {n}×{n}")
        scale = float(C.abs().max())
        if float((C - C.T).abs().max()) > SYMMETRY_TOL * scale:
            raise ValueError("input gram is not symmetric (a Gram Σ x xᵀ must be)")
        if (C.diagonal() < 0).any() or not float(C.diagonal().sum()) > 0:
            raise ValueError("input gram must have a non-negative diagonal and a positive trace (Σ x_j² ≥ 0, "
                             "not all zero)")
        if (mu < 0).any():
            raise ValueError(f"input abs_mean must be non-negative; it has {int((mu < 0).sum())} negative entries")
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, (int, np.integer)) or self.tokens < 0:
            raise ValueError(f"tokens must be a non-negative integer, got {self.tokens!r}")
        object.__setattr__(self, "gram", (C + C.T) / 2)
        object.__setattr__(self, "abs_mean", mu)
        object.__setattr__(self, "tokens", int(self.tokens))

    @property
    def n(self) -> int:
        return self.gram.shape[0]

    def to(self, dtype: torch.dtype) -> "InputStatistics":
        """The same statistics in ``dtype`` (self when already)."""
        if self.gram.dtype == dtype:
            return self
        return InputStatistics(self.gram.to(dtype), self.abs_mean.to(dtype), self.tokens)

    def __repr__(self) -> str:
        return f"InputStatistics(n={self.n}, tokens={self.tokens}, dtype={self.gram.dtype})"
