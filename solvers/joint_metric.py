"""A fixed preconditioner for the factored WLRA problem: each row's ALS normal matrix, diagonal in one shared basis.

With V fixed, f is a quadratic in U whose Hessian is block diagonal: row u_i couples only with itself, through

    H_i = Vᵀ diag(W_i) V        (½ ∂²f / ∂u_i², the ALS normal matrix of row i).

Forming every H_i costs (r + 1)/2 gradients' worth and applying all their inverses reads m·r² numbers, so a
first-order method can afford neither per step. This metric keeps, for every row, the exact diagonal of H_i in
one basis Q shared by all rows:

    P_i = Q D_i Qᵀ,   D_i = diag(Q⁻¹ H_i Q⁻ᵀ) = W_i (Ṽ ⊙ Ṽ),   Ṽ = V Q⁻ᵀ,

so that in the coordinates ũ_i = Qᵀ u_i the metric is diagonal: P̃⁻¹ g̃ = g̃ ⊘ D_i. Q is the basis
that diagonalises two matrices jointly (generalised eigenvectors):

    M = Vᵀ diag(w̄) V,   N = Vᵀ diag(e) V,   QQᵀ = M,   Q⁻¹ N Q⁻ᵀ diagonal,

with w̄ the mean row of W and e the leading principal direction of the rows' deviations W_i − w̄. Then P_i = H_i
exactly for every row of W in the span of w̄ and e: in particular for separable W = a bᵀ (P⁻¹ applied to −½∇_U f
is then the exact ALS update of U), and for W ≡ 1, where P = VᵀV is the Riemannian metric of scaled gradient
descent (Tong, Ma & Chi 2021; Mishra & Sepulchre 2016). The columns of W (the V-block, with U in place of V)
are treated the same way, with their own basis.

A solver using this metric works in coordinates where the longer block's metric is diagonal and the product
U Vᵀ keeps its form. For m ≥ n (the mirror image otherwise):

    Ũ = U Q_U,   Ṽ = V Q_U⁻ᵀ   (Ũ Ṽᵀ = U Vᵀ: f and G̃ = −½∇_x̃ f = ((W⊙R) Ṽ, (W⊙R)ᵀ Ũ) are the plain ones),
    P̃⁻¹ on the U-block:  G̃_U ⊘ D_U,
    P̃⁻¹ on the V-block:  ((G̃_V T) ⊘ D_V) Tᵀ,   T = Q_U⁻¹ Q_V⁻ᵀ

(in Ṽ's coordinates the V-metric Q_V D_V Q_Vᵀ reads K D_V Kᵀ with K = Q_Uᵀ Q_V, and K⁻ᵀ = T). Per iteration that
is two n·r·r products on the shorter block, 4nr² FLOPs: the FLOPs of applying ``solvers.grouped_metric``'s P⁻¹
(H_i ≈ c_i M_k, one scale per row within K groups) to that block alone, with each row's own diagonal along r
directions instead, no grouping and no permutation of the problem.

A ridge, ``RIDGE`` × the mean diagonal, keeps M and each D_i invertible; a row or column of zero weight gets
D = 1 (its gradient is zero); a numerically singular M falls back to its eigen-decomposition. Cost: e by
``POWER_STEPS`` power iterations over W, O(mn) each, once; a build per side 2nr² for M, 2nr² for N, 2nr² for Ṽ,
2mnr for D and O(r³) (one Cholesky, one eigh of r×r); per iteration 4 min(m, n) r² for the two products and
O((m + n) r) for P⁻¹.
"""
from __future__ import annotations

import torch

POWER_STEPS = 2  # power iterations for the leading principal direction of the rows of W around their mean
RIDGE = 1e-6     # ridge on M and on each D_i, relative to their mean diagonal
VIEW_CACHE = 32  # buffers whose block views ``blocks`` keeps (the solver's own are 2 memory + 8)


def principal_deviation(W: torch.Tensor, generator: torch.Generator,
                        steps: int = POWER_STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean row w̄ of W (N × n) and the unit leading right singular vector of W − 1 w̄ᵀ by ``steps`` power
    iterations from a seeded Gaussian vector (W − 1 w̄ᵀ is never formed: two matrix-vector products a step)."""
    mean = W.mean(0)
    x = torch.randn(W.shape[1], generator=generator, dtype=torch.float64).to(W.device, W.dtype)
    for _ in range(steps):
        y = W @ x - mean @ x
        x = W.mT @ y - mean * y.sum()
        x = x / x.norm().clamp_min(torch.finfo(W.dtype).tiny)
    return mean, x


class _Side:
    """The metric of one block: the rows of W (the U-block, built from V), or given Wᵀ the V-block."""

    def __init__(self, W: torch.Tensor, generator: torch.Generator):
        self.W = W
        self.mean, self.direction = principal_deviation(W, generator)

    def build(self, V: torch.Tensor, D_inv: torch.Tensor | None = None,
              VQ: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Q, Q⁻¹, D⁻¹) at V: the basis, its inverse and each row's inverse diagonal (N × r, into ``D_inv`` if
        given); V Q⁻ᵀ, which D needs, goes into ``VQ`` if given (a solver's coordinates use it)."""
        tiny = torch.finfo(V.dtype).tiny
        M = (V.mT * self.mean) @ V
        M.diagonal().add_(RIDGE * M.diagonal().mean().clamp_min(tiny))
        L, info = torch.linalg.cholesky_ex(M)
        if int(info) == 0:
            L_inv = torch.linalg.solve_triangular(L, torch.eye(M.shape[0], dtype=M.dtype, device=M.device),
                                                  upper=False)
        else:  # numerically singular M (e.g. rank-deficient V): whiten by its eigen-decomposition instead
            lam, vec = torch.linalg.eigh(M)
            root = lam.clamp_min(RIDGE * lam.max().clamp_min(tiny)).sqrt()
            L, L_inv = vec * root, vec.mT / root[:, None]
        C = L_inv @ ((V.mT * self.direction) @ V) @ L_inv.mT
        E = torch.linalg.eigh(0.5 * (C + C.mT))[1]
        Q, Q_inv = L @ E, E.mT @ L_inv
        D = torch.mm(self.W, torch.mm(V, Q_inv.mT, out=VQ).square(), out=D_inv)  # row i: diag(Q⁻¹ H_i Q⁻ᵀ), ≥ 0
        mean = D.mean(1, keepdim=True)
        D.add_(RIDGE * mean)  # > 0 throughout a row whose mean is, 0 throughout one whose weights are all 0
        return Q, Q_inv, D.reciprocal_().masked_fill_(mean == 0, 1.0)


class JointDiagonalMetric:
    """The joint-diagonal metric for U and for V and its coordinates x̃ (module docstring), with the longer block
    (U when m ≥ n) the one whose metric is diagonal.

    ``start(U, V)`` builds the metric there and returns x̃ stacked (one vector of (m + n) r numbers);
    ``blocks(x̃)`` views it as (Ũ, Ṽ); ``rebuild(x̃)`` builds the metric anew at the point x̃ and returns that
    point in the new coordinates; ``unstack(x̃)`` gives (U, V); ``apply_stacked(G̃)`` is P̃⁻¹ G̃. Since Ũ Ṽᵀ = U Vᵀ,
    f and G̃ at x̃ are the plain ones of the blocks (``objective.weighted_residual``,
    ``objective.stacked_half_gradient``). A and W stay in the problem's order (``permute`` is the identity).

    Layout: the diagonal block is stored row by row (N × r), the dense one transposed (r × N', its r rows of
    length N' = min(m, n)): with the m×n residual stored row by row, that is the layout in which the three products
    of an iteration ran fastest in docs/solvers-fastest.md's measurements, and every other pass is element-wise
    over the stacked vector, indifferent to the layout."""

    def __init__(self, W: torch.Tensor, generator: torch.Generator):
        self.m, self.W = W.shape[0], W
        self.rows, self.cols = _Side(W, generator), _Side(W.mT, generator)
        self.shapes = (self.m, W.shape[1])

    def permute(self, X: torch.Tensor) -> torch.Tensor:
        return X

    def blocks(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Ũ, Ṽ) as m × r and n × r views of the stacked vector X (the dense block's a transposed view).

        The views of each buffer are made once and kept (a solver passes the same few buffers every iteration,
        and making them costs more than a small problem's element-wise work); the views keep their buffer
        alive, so an address in the cache always means the same memory."""
        key = (X.data_ptr(), X.numel())
        views = self._views.get(key)
        if views is None:
            if len(self._views) >= VIEW_CACHE:
                self._views.clear()
            (m, n), r = self.shapes, X.numel() // sum(self.shapes)
            U, V = X[:m * r], X[m * r:]
            views = self._views[key] = (U.view(r, m).mT, V.view(n, r)) if self.u_dense else (U.view(m, r),
                                                                                               V.view(r, n).mT)
        return views

    def start(self, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        self.u_dense, self._views = self.m < self.W.shape[1], {}
        X, self.D_inv = (U.new_empty(U.numel() + V.numel()) for _ in range(2))
        (X_u, X_v), (D_u, D_v) = self.blocks(X), self.blocks(self.D_inv)
        # the dense block's coordinates are the V Q⁻ᵀ (U Q⁻ᵀ) that the other block's build forms for its D
        Q_u, Q_u_inv, _ = self.rows.build(V, D_u, VQ=None if self.u_dense else X_v)
        Q_v, Q_v_inv, _ = self.cols.build(U, D_v, VQ=X_u if self.u_dense else None)
        if not self.u_dense:  # Ũ = U Q_U, Ṽ = V Q_U⁻ᵀ; the V-block's P̃⁻¹: G ↦ ((G T) ⊘ D) Tᵀ, T = Q_U⁻¹ Q_V⁻ᵀ
            self.to_u, self.from_u, self.to_v, self.from_v = Q_u, Q_u_inv, Q_u_inv.mT, Q_u.mT
            self.T = Q_u_inv @ Q_v_inv.mT
            torch.mm(U, self.to_u, out=X_u)
        else:  # the mirror image: Ṽ = V Q_V, Ũ = U Q_V⁻ᵀ; the U-block's G ↦ ((G T) ⊘ D) Tᵀ, T = Q_V⁻¹ Q_U⁻ᵀ
            self.to_u, self.from_u, self.to_v, self.from_v = Q_v_inv.mT, Q_v.mT, Q_v, Q_v_inv
            self.T = Q_v_inv @ Q_u_inv.mT
            torch.mm(V, self.to_v, out=X_v)
        self.T_t = self.T.mT.contiguous()
        self.scratch = torch.empty_like(self._dense_first(self.blocks(self.D_inv))[0])  # the dense block's layout
        return X

    def _dense_first(self, pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return pair if self.u_dense else pair[::-1]

    def rebuild(self, X: torch.Tensor) -> torch.Tensor:
        return self.start(*self.unstack(X))

    def unstack(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        U, V = self.blocks(X)
        return U @ self.from_u, V @ self.from_v

    def rescale_rows(self, scale: torch.Tensor) -> None:
        """P̃_i⁻¹ ← scale_i P̃_i⁻¹ for each row i of Ũ, then of Ṽ (``scale``: m + n values)."""
        for block, rows in zip(self.blocks(self.D_inv), scale.split(self.shapes)):
            block.mul_(rows.unsqueeze(-1))

    def apply_stacked(self, G: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """P̃⁻¹ G̃, same layout (into ``out`` when given): G̃ ⊘ D on the diagonal block, ((G̃ T) ⊘ D) Tᵀ on the
        other (``start``)."""
        out = torch.empty_like(G) if out is None else out
        (g_dense, g_diag), (o_dense, o_diag) = self._dense_first(self.blocks(G)), self._dense_first(self.blocks(out))
        d_dense, d_diag = self._dense_first(self.blocks(self.D_inv))
        torch.mul(g_diag, d_diag, out=o_diag)
        torch.mm(g_dense, self.T, out=self.scratch)
        self.scratch.mul_(d_dense)
        torch.mm(self.scratch, self.T_t, out=o_dense)
        return out
