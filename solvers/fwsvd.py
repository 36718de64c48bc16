"""Fisher-weighted SVD (Hsu et al., ICLR 2022) and its column and two-sided variants.

Each collapses W to marginal sums and solves the resulting separable problem exactly with ``scaled_svd``:
    fwsvd_row:        a_i = Σ_j W_ij,  b ≡ 1        (FWSVD as published: row importances)
    fwsvd_col:        a ≡ 1,          b_j = Σ_i W_ij
    fwsvd_two_sided:  a_i = Σ_j W_ij,  b_j = Σ_i W_ij
Each is exact when W has that structure (W = a 1ᵀ, 1 bᵀ, a bᵀ respectively; two-sided because the marginals
of a bᵀ are proportional to a and b). Cost: O(mn) for the sums plus one thin SVD, O(mn·min(m, n)).
"""
import torch

from solvers.base import ClosedFormSolver
from solvers.linalg import scaled_svd


class FWSVDRow(ClosedFormSolver):
    """FWSVD: scaled SVD with row sums of W as row weights (see module docstring)."""

    name = "fwsvd_row"
    family = "fwsvd"
    exact_on = frozenset({"constant", "planted"})

    def fit(self, dp):
        return scaled_svd(dp.A, dp.W.sum(1), torch.ones_like(dp.A[0]), dp.rank)


class FWSVDCol(ClosedFormSolver):
    """Scaled SVD with column sums of W as column weights (see module docstring)."""

    name = "fwsvd_col"
    family = "fwsvd"
    exact_on = frozenset({"constant", "planted"})

    def fit(self, dp):
        return scaled_svd(dp.A, torch.ones_like(dp.A[:, 0]), dp.W.sum(0), dp.rank)


class FWSVDTwoSided(ClosedFormSolver):
    """Scaled SVD with row sums and column sums of W (see module docstring)."""

    name = "fwsvd_two_sided"
    family = "fwsvd"
    exact_on = frozenset({"constant", "separable", "planted"})

    def fit(self, dp):
        return scaled_svd(dp.A, dp.W.sum(1), dp.W.sum(0), dp.rank)
