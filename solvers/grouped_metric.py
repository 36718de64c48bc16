"""A fixed preconditioner for the factored WLRA problem: the ALS normal matrices, approximated group by group.

With V fixed, f is a quadratic in U whose Hessian is block diagonal: row u_i couples only with itself, through

    H_i = Vᵀ diag(W_i) V        (½ ∂²f / ∂u_i², the ALS normal matrix of row i).

Forming every H_i costs 2·m·n·r(r+1)/2 FLOPs, (r + 1)/2 gradients' worth, so a factored first-order method cannot
afford it per step. Here the rows of W are split once into K groups of similar weight profile, and within group k

    H_i ≈ c_i M_k,   M_k = Vᵀ diag(b_k) V,   b_k = the mean of the group's rows of W,
    c_i = ⟨W_i, q⟩ / ⟨b_k, q⟩,   q_j = ‖v_j‖²     (so that tr(c_i M_k) = tr(H_i)),

i.e. W_i ≈ c_i b_k inside a group. The metric P = diag(c_i M_k) is exact when W is separable within every group:
with K = 1 and W = a bᵀ, P⁻¹ applied to −½∇_U f is the exact ALS update of U. With W ≡ 1 and K = 1 it is the
preconditioner (VᵀV)⁻¹ of scaled gradient descent (Tong, Ma & Chi 2021), the Riemannian metric of Mishra &
Sepulchre (2016) for the quotient geometry of U Vᵀ; the weights are what that metric lacks on Fisher-weighted
problems. The columns of W (the V-block, with U in place of V) are grouped and approximated the same way.

Grouping: each row profile W_i / Σ_j W_ij is projected onto ``FEATURES`` seeded Gaussian directions, and the rows
are split by recursive bisection along the principal axis of those features into K groups of ⌈m/K⌉ or ⌊m/K⌋
rows. The metric works in the *grouped order*: rows of U (and of A, W) permuted so that each group is a
contiguous block, larger groups first, so P⁻¹ is two batched products and no gather or scatter; ``permute`` and
``unpermute`` convert problems and factors (a solver keeps its iterate in grouped order and converts it back
for its ``factors``).

The metric is fixed between ``build`` calls (a quasi-Newton method needs one consistent metric; building it once
per solve was as good as every iteration in our measurements). A ridge, ``RIDGE`` × the mean diagonal of M_k,
keeps each M_k invertible; a row or column of zero weight gets c = 1 (its gradient is zero). Cost: grouping
O(mn·FEATURES) once; a build K·(2nr² + r³) + O(mn) per side; an application 2(m + n)r² FLOPs + O((m + n) r).
"""
from __future__ import annotations

import torch

from solvers.params import Int

FEATURES = 8    # random directions the row profiles are projected onto before grouping
RIDGE = 1e-6    # ridge on each M_k, relative to its mean diagonal


# The metric's parameters, shared by the solvers that use it.
GROUPS = Int(8, ge=1, doc="row (and column) groups of the weighted metric")
REFRESH = Int(50, ge=0, doc="iterations between rebuilds of the metric (and any carried residual); 0: never")


def bisection_groups(X: torch.Tensor, groups: int) -> list[torch.Tensor]:
    """Split the rows of X (N × d) into K = min(groups, N) index groups of ⌈N/K⌉ rows (the first N mod K groups)
    or ⌊N/K⌋ rows, by recursive bisection along each part's principal axis (sign fixed: its largest entry > 0)."""
    N = X.shape[0]
    K = max(1, min(groups, N))
    sizes = [N // K + 1] * (N % K) + [N // K] * (K - N % K)

    def split(idx: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
        if len(sizes) == 1:
            return [idx]
        half = len(sizes) // 2
        Y = X[idx] - X[idx].mean(0)
        axis = torch.linalg.eigh(Y.mT @ Y)[1][:, -1]
        axis = axis * torch.sign(axis[axis.abs().argmax()])
        order = idx[torch.argsort(Y @ axis, stable=True)]
        cut = sum(sizes[:half])
        return split(order[:cut], sizes[:half]) + split(order[cut:], sizes[half:])

    return split(torch.arange(N, device=X.device), sizes)


class _Side:
    """The metric of one block in grouped order: the rows of W (the U-block, built from V), or given Wᵀ the
    V-block. ``W`` is already in grouped order along both dimensions; ``sizes`` are the groups' row counts."""

    def __init__(self, W: torch.Tensor, sizes: list[int]):
        self.W, self.sizes = W, sizes
        self.big, self.big_rows = sizes.count(sizes[0]), sizes.count(sizes[0]) * sizes[0]
        self.B = torch.stack([block.mean(0) for block in W.split(sizes)])  # (K, n): each group's mean row
        self.label = torch.repeat_interleave(torch.arange(len(sizes), device=W.device),
                                             torch.tensor(sizes, device=W.device))

    def build(self, V: torch.Tensor) -> None:
        q = V.square().sum(1)
        c = (self.W @ q) / (self.B @ q)[self.label]
        self.inv_c = torch.where(c > 0, 1 / c, torch.ones_like(c)).unsqueeze(-1)
        Y = V.mT * self.B.sqrt()[:, None, :]  # (K, r, n): M_k = Y_k Y_kᵀ
        M = Y @ Y.mT
        ridge = RIDGE * M.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(torch.finfo(V.dtype).tiny)
        M.diagonal(dim1=-2, dim2=-1).add_(ridge[:, None])
        L, info = torch.linalg.cholesky_ex(M)
        if bool((info > 0).any()):  # numerically singular M_k (e.g. rank-deficient V): a pseudo-inverse
            self.M_inv = torch.linalg.pinv(M, hermitian=True)
        else:  # M⁻¹ = L⁻ᵀ L⁻¹: one batched triangular solve and one product (half of cholesky_inverse's time)
            eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device).expand_as(M)
            L_inv = torch.linalg.solve_triangular(L, eye, upper=False)
            self.M_inv = L_inv.mT @ L_inv

    def apply(self, G: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        r, b, split = G.shape[-1], self.big, self.big_rows
        torch.bmm(G[:split].view(b, -1, r), self.M_inv[:b], out=out[:split].view(b, -1, r))
        if split < G.shape[0]:
            small = len(self.sizes) - b
            torch.bmm(G[split:].view(small, -1, r), self.M_inv[b:], out=out[split:].view(small, -1, r))
        return out.mul_(self.inv_c)


def _permutation(W: torch.Tensor, groups: int, generator: torch.Generator) -> tuple[torch.Tensor, list[int]]:
    rowsum = W.sum(1, keepdim=True)
    omega = torch.randn(W.shape[1], FEATURES, generator=generator, dtype=torch.float64).to(W.device, W.dtype)
    features = (W @ omega) / torch.where(rowsum > 0, rowsum, torch.ones_like(rowsum))  # the profiles, projected
    parts = bisection_groups(features, groups)
    return torch.cat(parts), [len(p) for p in parts]


class GroupedMetric:
    """P = blockdiag(c_i M_k) for U and for V (module docstring), in grouped order.

    ``GroupedMetric(W, groups, generator)`` finds the groups and keeps ``W`` in grouped order (``self.W``);
    ``permute`` / ``stack`` / ``unstack`` convert matrices and factors to and from the grouped order;
    ``build(X)`` fixes the metric at stacked factors X = [U; V]; ``apply_stacked(G)`` returns P⁻¹ G for
    G = [G_U; G_V] ((m + n) × r). ``weighted=False`` gives ScaledGD's unweighted (VᵀV)⁻¹, (UᵀU)⁻¹ (one group,
    W ≡ 1 in the metric; the problem's order)."""

    def __init__(self, W: torch.Tensor, groups: int, generator: torch.Generator, weighted: bool = True):
        m, n = W.shape
        if weighted:
            self.row_perm, row_sizes = _permutation(W, groups, generator)
            self.col_perm, col_sizes = _permutation(W.mT, groups, generator)
        else:
            self.row_perm, row_sizes = torch.arange(m, device=W.device), [m]
            self.col_perm, col_sizes = torch.arange(n, device=W.device), [n]
        self.row_inv, self.col_inv = torch.argsort(self.row_perm), torch.argsort(self.col_perm)
        self.m = m
        self.W = self.permute(W)
        metric_weights = self.W if weighted else torch.ones_like(W)
        self.rows, self.cols = _Side(metric_weights, row_sizes), _Side(metric_weights.mT, col_sizes)

    def permute(self, X: torch.Tensor) -> torch.Tensor:
        """An m×n matrix (A or W) in grouped order (a copy)."""
        return X.index_select(0, self.row_perm).index_select(1, self.col_perm)

    def stack(self, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """[U; V] in grouped order, (m + n) × r (a copy)."""
        return torch.cat([U.index_select(0, self.row_perm), V.index_select(0, self.col_perm)])

    def blocks(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, V) as views of X = [U; V] (grouped order)."""
        return X[:self.m], X[self.m:]

    def unstack(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, V) in the problem's order from X = [U; V] in grouped order."""
        return X[:self.m].index_select(0, self.row_inv), X[self.m:].index_select(0, self.col_inv)

    def start(self, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """[U; V] in grouped order, with the metric built there."""
        X = self.stack(U, V)
        self.build(X)
        return X

    def rebuild(self, X: torch.Tensor) -> torch.Tensor:
        """The metric built anew at X; X itself (the coordinates do not change)."""
        self.build(X)
        return X

    def build(self, X: torch.Tensor) -> None:
        """Fix the metric at the stacked factors X = [U; V] (grouped order)."""
        self.rows.build(X[self.m:])
        self.cols.build(X[:self.m])

    def rescale_rows(self, scale: torch.Tensor) -> None:
        """P_i⁻¹ ← scale_i P_i⁻¹ for each row i of [U; V] in grouped order (``scale``: m + n values)."""
        self.rows.inv_c.mul_(scale[:self.m].unsqueeze(-1))
        self.cols.inv_c.mul_(scale[self.m:].unsqueeze(-1))

    def apply_stacked(self, G: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """P⁻¹ G for G = [G_U; G_V] in grouped order, same layout (into ``out`` when given)."""
        out = torch.empty_like(G) if out is None else out
        self.rows.apply(G[:self.m], out[:self.m])
        self.cols.apply(G[self.m:], out[self.m:])
        return out
