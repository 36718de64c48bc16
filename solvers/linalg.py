"""Dense linear-algebra kernels shared by solvers (torch, any device and float dtype)."""
from __future__ import annotations

import torch


def truncated_svd(X: torch.Tensor, rank: int, *, method: str = "full", oversample: int = 10,
                  n_iter: int = 4, generator: torch.Generator | None = None):
    """Best rank-r factors of X (Eckart–Young): returns P (m×r), s (r), Q (n×r) with X ≈ P diag(s) Qᵀ.

    method "full": LAPACK/cuSOLVER thin SVD, O(mn·min(m, n)).
    method "randomized": Halko–Martinsson–Tropp range finder with ``n_iter`` power iterations and
    ``oversample`` extra columns, O(mn(r + p)(2 n_iter + 2)); accurate when the spectrum decays past r.
    """
    if method == "full":
        P, s, Qh = torch.linalg.svd(X, full_matrices=False)
        return P[:, :rank], s[:rank], Qh[:rank].T
    if method != "randomized":
        raise ValueError(f"unknown SVD method {method!r}; use 'full' or 'randomized'")
    m, n = X.shape
    k = min(rank + oversample, m, n)
    omega = torch.randn(n, k, generator=generator, dtype=torch.float64).to(X.device, X.dtype)
    Y = X @ omega
    for _ in range(n_iter):
        Y, _ = torch.linalg.qr(Y)
        Y, _ = torch.linalg.qr(X.T @ Y)
        Y = X @ Y
    Qr, _ = torch.linalg.qr(Y)
    Pb, s, Qh = torch.linalg.svd(Qr.T @ X, full_matrices=False)
    return (Qr @ Pb)[:, :rank], s[:rank], Qh[:rank].T


def balanced_factors(P: torch.Tensor, s: torch.Tensor, Q: torch.Tensor):
    """Split P diag(s) Qᵀ into U = P √s, V = Q √s (equal column norms: well-scaled for iterative methods)."""
    root = s.sqrt()
    return P * root, Q * root


def scaled_svd(A: torch.Tensor, row_weight: torch.Tensor, col_weight: torch.Tensor, rank: int):
    """Exact minimiser of Σ_ij a_i b_j (A − U Vᵀ)_ij² for non-negative a (m) and b (n).

    With D_a = diag(a): the objective is ‖D_a^{1/2} (A − U Vᵀ) D_b^{1/2}‖_F², so the truncated SVD of
    B = D_a^{1/2} A D_b^{1/2} ≈ P S Qᵀ gives U = D_a^{-1/2} P S^{1/2}, V = D_b^{-1/2} Q S^{1/2}. Rows or columns
    of zero weight do not enter the objective; their factor rows are set to zero (pseudo-inverse).
    The factors are returned rebalanced (``rebalance``: UᵀU = VᵀV), a form that depends only on U Vᵀ: the
    unscaling alone would tilt them by (scale of a / scale of b)^¼, so a start for the factored first-order
    solvers would depend on W's scale (Adam moved the small factor by its large partner's step size and diverged
    on W × 2^60). Cost: O(mn·min(m, n)) for the SVD, O((m + n) r²) to rebalance.
    """
    ra, rb = row_weight.clamp_min(0).sqrt(), col_weight.clamp_min(0).sqrt()
    P, s, Q = truncated_svd(ra[:, None] * A * rb[None, :], rank)
    U, V = balanced_factors(P, s, Q)
    inv_a = torch.where(ra > 0, 1 / ra.clamp_min(torch.finfo(A.dtype).tiny), torch.zeros_like(ra))
    inv_b = torch.where(rb > 0, 1 / rb.clamp_min(torch.finfo(A.dtype).tiny), torch.zeros_like(rb))
    return rebalance(inv_a[:, None] * U, inv_b[:, None] * V)


def separable_weights(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) ≥ 0 with a bᵀ the best rank-one fit of a non-negative W in Frobenius norm: σ₁ p qᵀ with p, q ≥ 0
    (Perron–Frobenius), so a = σ₁|p| and b = |q| (abs() removes the SVD's sign ambiguity). One thin SVD."""
    p, s, q = truncated_svd(W, 1)
    return s[0] * p[:, 0].abs(), q[:, 0].abs()


def rebalance(U: torch.Tensor, V: torch.Tensor):
    """The same product U Vᵀ in balanced form U' = P √s, V' = Q √s (P, Q orthonormal, s its singular values).

    The factorisation is invariant under U G, V G⁻ᵀ for invertible G; balancing picks the representative with
    U'ᵀU' = V'ᵀV' = diag(s), which keeps damped and gradient steps on (U, V) well scaled. Cost: two thin QRs
    and an r×r SVD, O((m + n) r²).
    """
    Qu, Ru = torch.linalg.qr(U)
    Qv, Rv = torch.linalg.qr(V)
    P, s, Qh = torch.linalg.svd(Ru @ Rv.T)
    return balanced_factors(Qu @ P, s, Qv @ Qh.T)
