"""The exact solution for separable weights, applied to the best separable fit of W."""
from solvers.base import ClosedFormSolver
from solvers.linalg import scaled_svd, truncated_svd


class Separable(ClosedFormSolver):
    """Fit W ≈ a bᵀ in Frobenius norm, then solve min Σ a_i b_j (A − U Vᵀ)² exactly.

    The best rank-one fit of a non-negative W is σ₁ p qᵀ with p, q ≥ 0 (Perron–Frobenius), so a = σ₁|p| and
    b = |q| (abs() removes the SVD's sign ambiguity). When W really is a bᵀ this is the exact WLRA optimum;
    otherwise it is the optimum of the nearest separable problem. Cost: two thin SVDs, O(mn·min(m, n)).
    """

    name = "separable"
    family = "separable"
    exact_on = frozenset({"constant", "separable", "planted"})

    def fit(self, dp):
        p, s, q = truncated_svd(dp.W, 1)
        return scaled_svd(dp.A, s[0] * p[:, 0].abs(), q[:, 0].abs(), dp.rank)
