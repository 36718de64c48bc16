"""The WLRA problem instance: A, W, rank, and the objective every solver is measured by.

    f(U, V) = Σ_ij W_ij (A_ij − (U Vᵀ)_ij)²,        rel_error = f / Σ_ij W_ij A_ij²

rel_error is 0 for an exact fit and 1 for the zero matrix, so it compares across problems.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from problems.arrays import as_float_tensor
from problems.inputs import InputStatistics
from problems.objective import activation_squared_error, weighted_squared_error


def _cast_weights(W: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """W in A's dtype, refusing what the cast would change silently: entries beyond the dtype's range
    (they would become inf) and positive entries below it (they would become 0)."""
    if W.dtype == dtype:
        return W
    cast = W.to(dtype)
    name = str(dtype).removeprefix("torch.")
    advice = "rescale W (a constant factor on W moves no minimiser) or give A as float64"
    big = ~torch.isfinite(cast)
    if big.any():
        raise ValueError(f"W has {int(big.sum())} entries beyond the range of A's dtype {name} (largest "
                         f"{W.abs().max().item():.3g} > {torch.finfo(dtype).max:.3g}): {advice}")
    lost = (cast == 0) & (W != 0)
    if lost.any():
        raise ValueError(f"W has {int(lost.sum())} non-zero entries below the range of A's dtype {name} "
                         f"(smallest {W[lost].abs().min().item():.3g}), which the cast would make 0: {advice}, "
                         "or set those weights to 0 yourself")
    return cast


def _check_weighted_norm(value: float) -> None:
    """Σ W A² must be a positive normal float64: it divides every rel_error, and solvers take their scale from it."""
    if value == 0:
        raise ValueError("Σ W A² is 0: A is zero wherever W > 0, so every factorisation fits exactly and "
                         "rel_error (f / Σ W A²) is undefined; give an A that is non-zero where W > 0")
    if not math.isfinite(value):
        raise ValueError("Σ W A² overflows float64 (inf): rescale A or W (a constant factor on W moves no "
                         "minimiser; one on A scales them)")
    if value < sys.float_info.min:
        raise ValueError(f"Σ W A² = {value:.3g} underflows float64's normal range: rescale A or W (a constant "
                         "factor on W moves no minimiser; one on A scales them)")


def rank_for_param_ratio(m: int, n: int, param_ratio: float) -> int:
    """r = ⌊ρ·mn/(m+n)⌋ (at least 1): the rank whose factors store a fraction ρ of the mn entries."""
    if not (param_ratio > 0):
        raise ValueError(f"param_ratio must be positive, got {param_ratio}")
    return max(1, min(min(m, n), int(math.floor(param_ratio * m * n / (m + n)))))


@dataclass(frozen=True, eq=False)
class Problem:
    """A weighted low-rank approximation instance.

    A, W: m×n, numpy arrays or torch tensors (stored as CPU float32/float64 tensors of A's dtype).
    rank: target rank r, 1 ≤ r ≤ min(m, n).
    f_star: the optimal raw objective when known (synthetic families), else None.
    meta: free-form provenance (family, model, layer, ...). ``meta["f_star_by_rank"]``, when present,
    is a list whose entry k is f* at rank k (None where unknown); ``with_rank`` uses it.
    inputs: optional calibration statistics of the layer's input (``problems.inputs.InputStatistics``: the
    Gram C, n×n, and mean |x|, n = A's columns), stored in A's dtype; the activation-aware solvers require
    them and ``activation_error`` measures the layer's output error with them.
    """

    A: Any
    W: Any
    rank: int
    name: str = "problem"
    f_star: float | None = None
    meta: dict = field(default_factory=dict)
    inputs: InputStatistics | None = None

    def __post_init__(self):
        A = as_float_tensor(self.A, "A")
        W = _cast_weights(as_float_tensor(self.W, "W"), A.dtype)
        if A.shape != W.shape:
            raise ValueError(f"shape mismatch: A is {tuple(A.shape)} but W is {tuple(W.shape)}")
        if (W < 0).any():
            raise ValueError(f"W must be non-negative; it has {int((W < 0).sum())} negative entries "
                             f"(min {W.min().item():.3g})")
        if not (W > 0).any():
            raise ValueError("W is all zero: every approximation is optimal, the problem is empty")
        if isinstance(self.rank, bool) or not isinstance(self.rank, (int, np.integer)):
            raise TypeError(f"rank must be an integer, got {type(self.rank).__name__}")
        m, n = A.shape
        if not 1 <= int(self.rank) <= min(m, n):
            raise ValueError(f"rank {self.rank} out of range: need 1 ≤ rank ≤ min(m, n) = {min(m, n)}")
        if self.f_star is not None and (isinstance(self.f_star, bool) or not isinstance(self.f_star, numbers.Real)):
            raise TypeError(f"f_star must be a finite non-negative number or None, got {self.f_star!r}")
        if self.f_star is not None and not (math.isfinite(self.f_star) and self.f_star >= 0):
            raise ValueError(f"f_star must be a finite non-negative number or None, got {self.f_star}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {self.name!r}")
        if self.meta is not None and not isinstance(self.meta, Mapping):
            raise TypeError(f"meta must be a dict (JSON object) or None, got {type(self.meta).__name__}")
        if self.inputs is not None:
            if not isinstance(self.inputs, InputStatistics):
                raise TypeError(f"inputs must be a problems.inputs.InputStatistics or None, "
                                f"got {type(self.inputs).__name__}")
            if self.inputs.n != n:
                raise ValueError(f"inputs describe {self.inputs.n} input features but A has n = {n} columns")
            object.__setattr__(self, "inputs", self.inputs.to(A.dtype))
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "rank", int(self.rank))
        object.__setattr__(self, "meta", dict(self.meta or {}))
        if self.f_star is not None:
            object.__setattr__(self, "f_star", float(self.f_star))
        _check_weighted_norm(self.weighted_norm)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.A.shape)

    @property
    def dtype(self) -> torch.dtype:
        return self.A.dtype

    @property
    def param_ratio(self) -> float:
        """ρ = r(m+n)/(mn): the fraction of A's entries that the rank-r factors store."""
        m, n = self.shape
        return self.rank * (m + n) / (m * n)

    @cached_property
    def weighted_norm(self) -> float:
        """Σ W A², the objective of the zero matrix (the rel_error normaliser), in float64 throughout (like
        ``objective``, so the zero matrix has rel_error 1 exactly); a positive normal float64, checked on
        construction."""
        return float(weighted_squared_error(self.A, self.W, dtype=torch.float64))

    def objective(self, U, V) -> float:
        """Raw f(U, V) = Σ W (A − U Vᵀ)², computed in float64 on the CPU."""
        U, V = self._check_factors(U, V)
        # float64 factors promote each chunk of A and W to float64 inside weighted_squared_error.
        return float(weighted_squared_error(self.A, self.W, U, V))

    def rel_error(self, U, V) -> float:
        """f(U, V) / Σ W A²: 0 for an exact fit, 1 for the zero matrix."""
        return self.objective(U, V) / self.weighted_norm

    @cached_property
    def activation_norm(self) -> float:
        """tr(A C Aᵀ) = ‖A X‖² / T, the activation objective of the zero matrix (needs ``inputs``)."""
        return float(activation_squared_error(self.A, self._gram()))

    def _gram(self) -> torch.Tensor:
        if self.inputs is None:
            raise ValueError(f"problem {self.name!r} carries no input statistics (inputs=None): the activation "
                             "objective needs the layer's calibration Gram")
        return self.inputs.gram

    def activation_error(self, U, V) -> float:
        """‖(A − U Vᵀ) X‖² / ‖A X‖² = tr(R C Rᵀ) / tr(A C Aᵀ), R = A − U Vᵀ: the layer's relative output error
        on its calibration inputs (0: exact, 1: the zero matrix), float64 on the CPU. Cost O(mn² + mnk).
        ValueError when the problem carries no ``inputs`` or the factors do not fit A."""
        C = self._gram()
        U, V = self._check_factors(U, V)
        return float(activation_squared_error(self.A, C, U, V)) / self.activation_norm

    def _check_factors(self, U, V) -> tuple[torch.Tensor, torch.Tensor]:
        U, V = torch.as_tensor(U), torch.as_tensor(V)
        m, n = self.shape
        if U.dim() != 2 or V.dim() != 2 or U.shape[0] != m or V.shape[0] != n or U.shape[1] != V.shape[1]:
            raise ValueError(f"factors must be U (m×k) and V (n×k) with m={m}, n={n}; "
                             f"got U {tuple(U.shape)}, V {tuple(V.shape)}")
        return U.detach().to("cpu", torch.float64), V.detach().to("cpu", torch.float64)

    @property
    def rel_f_star(self) -> float | None:
        """f* / Σ W A² when f* is known."""
        return None if self.f_star is None else self.f_star / self.weighted_norm

    def with_rank(self, rank: int) -> "Problem":
        """The same A and W at another rank; f* carried over from meta["f_star_by_rank"] when known."""
        table = self.meta.get("f_star_by_rank")
        f_star = table[rank] if table is not None and 0 <= rank < len(table) else None
        return dataclasses.replace(self, rank=rank, f_star=f_star)

    def __repr__(self) -> str:
        m, n = self.shape
        f = "unknown" if self.f_star is None else f"{self.f_star:.4g}"
        extra = "" if self.inputs is None else ", with inputs"
        return f"Problem({self.name!r}, {m}×{n}, rank={self.rank}, dtype={self.dtype}, f*={f}{extra})"
