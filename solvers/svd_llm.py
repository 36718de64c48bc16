"""SVD-LLM: truncation-aware data whitening (Wang et al. 2024, "SVD-LLM: Truncation-aware Singular Value
Decomposition for Large Language Model Compression")."""
import torch

from solvers.base import ClosedFormSolver
from solvers.linalg import rebalance, truncated_svd


def whitening_factor(C: torch.Tensor) -> tuple[torch.Tensor, str]:
    """G with G Gᵀ = C for a symmetric positive semi-definite C (n×n): its Cholesky factor L when C is
    positive definite to the working precision, else (C singular, or indefinite by rounding) the PSD square
    root G = E·max(Λ, 0)^½ of the eigendecomposition C = E Λ Eᵀ, an exact factor of the nearest PSD matrix.
    Returns (G, "cholesky" | "eigh"). Cost O(n³/3) (Cholesky) or O(n³) (eigh)."""
    L, info = torch.linalg.cholesky_ex(C)
    if int(info) == 0 and bool(torch.isfinite(L).all()):
        return L, "cholesky"
    lam, E = torch.linalg.eigh(C)
    return E * lam.clamp_min(0).sqrt(), "eigh"


class SVDLLM(ClosedFormSolver):
    """The rank-r minimiser of the layer's output error on its calibration inputs,
    min ‖(A − U Vᵀ) X‖_F² = min tr(R C Rᵀ), R = A − U Vᵀ, C = X Xᵀ/T (``problem.inputs``).

    With L Lᵀ = C (Cholesky), tr(R C Rᵀ) = ‖R L‖_F², and X ↦ X L maps rank-r matrices onto rank-r matrices, so
    the optimum is P_r(A L) L⁻¹ with P_r the truncated SVD (Eckart–Young), and its error is Σ_{i>r} σ_i(A L)²:
    the truncated singular values are exactly the loss ("truncation-aware"). The multiplication back by L⁻¹
    needs no inverse: P_r(A L) = P Pᵀ (A L) for the r leading left singular vectors P of A L, so
    P_r(A L) L⁻¹ = P Pᵀ A, returned (balanced) as U = P, V = Aᵀ P. Nothing is amplified by ‖L⁻¹‖, and a
    singular C (fewer calibration tokens than inputs, dead channels) needs no ridge: any G with G Gᵀ = C gives a
    minimiser P Pᵀ A (``whitening_factor``'s eigen-square-root fallback, recorded in ``info["whitening"]``).
    C is factored in float64 whatever the solve dtype. Exact when rank(A) ≤ r and C is positive definite.
    Ignores W. Cost: O(n³/3) for the Cholesky factor, O(mn²) for A L, one thin SVD O(mn·min(m, n)).
    """

    name = "svd_llm"
    family = "activation-aware"
    requires = frozenset({"inputs"})
    exact_on = frozenset({"planted"})

    def solution(self, dp, time_limit=None):
        G, how = whitening_factor(dp.problem.inputs.gram.to(dp.device, torch.float64))
        P, _, _ = truncated_svd(dp.A @ G.to(dp.dtype), dp.rank)
        U, V = rebalance(P, dp.A.T @ P)
        return U, V, {"whitening": how}
