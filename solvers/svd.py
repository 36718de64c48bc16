"""Plain truncated SVD: the weight-blind baseline."""
from solvers.base import ClosedFormSolver
from solvers.linalg import balanced_factors, truncated_svd


class SVD(ClosedFormSolver):
    """U Vᵀ = P_r(A), the rank-r truncated SVD of A; ignores W.

    Optimal when W is constant (Eckart–Young) or when A has rank ≤ r. Cost: one thin SVD, O(mn·min(m, n)).
    """

    name = "svd"
    family = "svd"
    exact_on = frozenset({"constant", "planted"})

    def fit(self, dp):
        return balanced_factors(*truncated_svd(dp.A, dp.rank))
