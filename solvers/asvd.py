"""ASVD: activation-aware SVD (Yuan et al. 2023, "ASVD: Activation-aware Singular Value Decomposition for
Compressing Large Language Models"), its channel-scaling step."""
import torch

from solvers.base import ClosedFormSolver
from solvers.linalg import scaled_svd
from solvers.params import Real


class ASVD(ClosedFormSolver):
    """Truncated SVD of A S with S = diag(μ_j^α), μ_j = mean |x_j| the calibration mean magnitude of input j,
    then S undone: U Vᵀ = P_r(A S) S⁻¹. Input channels with large activations are fitted more closely.

    Equivalently the exact minimiser of Σ_ij μ_j^{2α} (A − U Vᵀ)_ij², a separable problem with column weights
    μ^{2α} (``solvers.linalg.scaled_svd``); α = 0 is the plain SVD. Columns with μ_j = 0 (inputs that never
    fire) get zero factor rows: they cannot affect the layer's output. The paper's default α = 0.5; its
    sensitivity-based rank search and singular-value absorption are not part of this baseline (ranks come
    from the benchmark). Exact when rank(A) ≤ r and every μ_j > 0. Ignores W. Needs ``problem.inputs``.
    Cost: O(mn) for the scaling plus one thin SVD, O(mn·min(m, n)).
    """

    name = "asvd"
    family = "activation-aware"
    parameters = {"alpha": Real(0.5, ge=0, doc="exponent α of the scaling S = diag(mean|x|^α)")}
    requires = frozenset({"inputs"})
    exact_on = frozenset({"planted"})

    def fit(self, dp):
        mu = dp.problem.inputs.abs_mean.to(dp.device, dp.dtype)
        return scaled_svd(dp.A, torch.ones_like(dp.A[:, 0]), mu.pow(2 * self.params["alpha"]), dp.rank)
