"""The exact solution for separable weights, applied to the best separable fit of W."""
from solvers.base import ClosedFormSolver
from solvers.linalg import scaled_svd, separable_weights


class Separable(ClosedFormSolver):
    """Fit W ≈ a bᵀ in Frobenius norm, then solve min Σ a_i b_j (A − U Vᵀ)² exactly.

    The best rank-one fit of a non-negative W is σ₁ p qᵀ with p, q ≥ 0 (Perron–Frobenius), so a = σ₁|p| and
    b = |q| (``separable_weights``). When W really is a bᵀ this is the exact WLRA optimum;
    otherwise it is the optimum of the nearest separable problem. Cost: two thin SVDs, O(mn·min(m, n)).
    """

    name = "separable"
    family = "separable"
    exact_on = frozenset({"constant", "separable", "planted"})

    def fit(self, dp):
        return scaled_svd(dp.A, *separable_weights(dp.W), dp.rank)
