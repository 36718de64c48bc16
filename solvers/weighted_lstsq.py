"""Batched row-wise weighted least squares: the kernel of ALS (``solvers.als``).

For fixed V (n×r), each row i of U solves its own r×r normal equations

    H_i u_i = b_i,    H_i = Σ_j W_ij v_j v_jᵀ = Vᵀ diag(W_i) V,    b_i = Vᵀ (W_i ⊙ A_i).

All m normal matrices come out of ONE matrix product G = W · K, where K ∈ R^{n×P}, P = r(r+1)/2, holds the
products K_{j,(k,l)} = V_jk V_jl of every pair k ≤ l of V's columns (a Khatri–Rao-style trick): G_{i,(k,l)} =
(H_i)_kl. The sweep therefore runs at GEMM speed. (K is built in column blocks k ∈ [k0, k1), l ≥ k0, which
recomputes the few mirrored pairs inside each block's diagonal square — a few per cent — in exchange for plain
strided copies instead of gathers and scatters.) Only the upper triangle of each H_i is written, next to its
right-hand side: the augmented rows [H_i | b_i] (r × (r+1)).

The r×r systems are then solved by a blocked, left-looking Cholesky factorisation H_i = R_iᵀ R_i run on all
rows at once (``_cholesky_solve_``): for each block row J of width β ≈ √r,

    S = [H | b]_{J, J:} − R_{:J, J}ᵀ [R | y]_{:J, J:}        (one batched GEMM, inner dimension = rows done)
    R_JJ = chol(S_{:, :β}),   [R | y]_{J, J:} = R_JJ⁻ᵀ S       (a β×β LAPACK Cholesky and its inverse)

which also carries out the forward substitution Rᵀ y = b in the augmented column; a blocked back substitution
R x = y follows. Nearly all of the r³/3 FLOPs thus run in batched GEMMs; LAPACK, which factorises one matrix
per call, sees only β×β blocks. β ≈ √r balances the r/β small factorisations against the GEMMs' inner
dimension. On the CPU the rows are processed in sub-batches of about 8 MiB per intra-op thread so that the
working set stays in cache. (Measurements behind these choices: docs/als.md.)

Regularisation is a *proximal* ridge: given a centre c_i (the current row, or 0), the row minimises

    f_i(u) + λ_i ‖u − c_i‖²,    λ_i = reg · tr(H_i) / r   (floored at eps·tr(H_i), the dtype's resolution),

i.e. u_i = c_i + (H_i + λ_i I)⁻¹ Vᵀ (W_i ⊙ (A_i − V c_i)). The ridge is relative to each row's own scale, so
it keeps rows with tiny or zero weight well-posed; centred at the current iterate it damps the step without
moving the fixed point, and f_i(u_i) ≤ f_i(c_i) − λ_i‖u_i − c_i‖² (a monotone decrease). Centred at 0 it is
the ordinary ridge. When Cholesky fails (a singular or indefinite system in floating point) the row's normal
matrix is formed again and the row falls back to the minimum-norm correction from an eigendecomposition
(eigenvalues below r·eps·λ_max dropped), which still cannot increase f_i.

Memory: rows are processed in chunks and column pairs in blocks sized from ``memory_budget`` (bytes), so the
chunk × r × (r+1) augmented systems, the n × block K and the chunk × block G never exceed it (one row and one
pair-row k are always processed, whatever the budget). Everything carries a leading batch dimension B, so
``solvers.als.solve_batched`` advances B problems with the same batched GEMMs and Cholesky.

Cost of one call on B problems of m rows (FLOPs, as counted by ``bench/als_perf.py``):
    2·m·n·P  (G = W·K)  +  2·m·n·r (b; another 2·m·n·r for the residual when centred)
    + m·r³/3 (Cholesky) + 2·m·r² (forward and back substitution),  per problem.
"""
from __future__ import annotations

import torch

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of scratch for one chunk (1 GiB)


class Workspace:
    """Scratch buffers kept from one call to the next: pass one workspace to every half-sweep of a solve.

    The augmented systems and the K/G blocks are prefixes of buffers that stay mapped, so only the first
    half-sweeps page them in. Freshly allocated scratch of that size (tens to hundreds of MiB; glibc hands
    such blocks back to the kernel on free) costs a page fault per 4 KiB on every sweep.
    A buffer grows to the largest request seen, so a workspace holds at most the scratch of the larger of
    the two half-sweeps' shapes for each buffer (at most 2 × ``memory_budget``) until it is dropped."""

    def __init__(self):
        self._buffers: dict[tuple, torch.Tensor] = {}

    def get(self, name: str, numel: int, like: torch.Tensor) -> torch.Tensor:
        """A 1-D tensor of ``numel`` elements with ``like``'s dtype and device (contents undefined)."""
        key = (name, like.dtype, like.device)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < numel:
            self._buffers.pop(key, None)                     # free the smaller one before allocating
            buffer = self._buffers[key] = like.new_empty(numel)
        return buffer[:numel]


def flops(m: int, n: int, r: int, centred: bool) -> float:
    """FLOPs of one row-wise solve of m rows (see module docstring); ``centred`` adds the residual GEMM."""
    pairs = r * (r + 1) // 2
    return 2.0 * m * n * pairs + (4.0 if centred else 2.0) * m * n * r + m * r ** 3 / 3 + 2.0 * m * r * r


def _column_blocks(r: int, max_pairs: int) -> list[tuple[int, int]]:
    """Split the pairs (k, l ≥ k) into blocks k ∈ [k0, k1), l ∈ [k0, r) of height ⌈r/16⌉ (lower when
    (k1 − k0)(r − k0) would pass ``max_pairs``; at least 1). Each block's diagonal square computes its
    (k1 − k0)²/2 mirrored pairs twice: about 1/32 of r(r+1)/2 in all, for plain strided copies into H.
    For r ≤ 16 one block (all r² products): there the per-call overhead of more GEMMs costs more than the
    duplicated products."""
    height = r if r <= 16 else -(-r // 16)
    blocks, k0 = [], 0
    while k0 < r:
        k1 = k0 + max(1, min(r - k0, height, max_pairs // (r - k0)))
        blocks.append((k0, k1))
        k0 = k1
    return blocks


def chunk_sizes(batch: int, m: int, n: int, r: int, element_size: int, memory_budget: int) -> tuple[int, int]:
    """(rows per chunk, pairs per block) keeping one chunk's scratch within ``memory_budget`` bytes.

    Half the budget goes to per-row tensors (the augmented systems [H | b], r(r+1), plus residual rows, 3n, and
    right-hand sides), half to the pair blocks (K: n per pair; G: rows per pair). The rows are then spread
    evenly over the chunks. The solve's own scratch is per sub-batch (``_SUB_BATCH_BYTES`` on
    the CPU) or, on CUDA, O(rows·r·β), well inside the per-row share."""
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be positive bytes, got {memory_budget}")
    half = memory_budget / (2 * batch * element_size)
    rows = int(max(1, min(m, half // (r * (r + 1) + 3 * n + 4 * r))))
    rows = -(-m // -(-m // rows))                            # equal chunks: no small last one to pay for K again
    pairs = int(max(r, half // (n + rows)))
    return rows, pairs


def _upper_normal_matrices(Wc: torch.Tensor, V: torch.Tensor, blocks, out: torch.Tensor,
                           workspace: Workspace) -> None:
    """Write the upper triangle (k ≤ l) of every H_i = Vᵀ diag(W_i) V into ``out[..., :r]`` (B, rows, r, ≥ r),
    one GEMM G = W·K per column block. For the block k ∈ [k0, k1): K_{j,(k,l)} = V_jk V_jl for l ∈ [k0, r), so
    G fills rows k0:k1 of every H_i from the diagonal rightwards (a plain strided copy; the block's diagonal
    square is written in full). Entries below the diagonal outside those squares are left as they were.
    K and G are prefixes of two ``workspace`` buffers sized for the widest block, reused by every block
    (freshly allocated ones cost a page fault per 4 KiB)."""
    B, rows, n = Wc.shape
    r = V.shape[-1]
    width = max((k1 - k0) * (r - k0) for k0, k1 in blocks)
    K_buffer, G_buffer = workspace.get("K", B * n * width, Wc), workspace.get("G", B * rows * width, Wc)
    for k0, k1 in blocks:
        h, w = k1 - k0, r - k0
        K = torch.mul(V[:, :, k0:k1, None], V[:, :, None, k0:], out=K_buffer[:B * n * h * w].view(B, n, h, w))
        G = torch.matmul(Wc, K.view(B, n, h * w), out=G_buffer[:B * rows * h * w].view(B, rows, h * w))
        out[:, :, k0:k1, k0:r] = G.view(B, rows, h, w)


def _normal_matrices(Wc: torch.Tensor, V: torch.Tensor, blocks) -> torch.Tensor:
    """H (B, rows, r, r), every H_i = Vᵀ diag(W_i) V in full (the upper triangle mirrored)."""
    B, rows, _ = Wc.shape
    r = V.shape[-1]
    H = Wc.new_empty(B, rows, r, r)
    _upper_normal_matrices(Wc, V, blocks, H, Workspace())
    return H.triu_() + H.triu(1).mT


def normal_matrices(W: torch.Tensor, V: torch.Tensor, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> torch.Tensor:
    """H (m, r, r) with H_i = Vᵀ diag(W_i) V for a single m×n W and n×r V, row chunks and pair blocks sized
    from ``memory_budget`` as in ``row_solve`` (the r×r diagonal blocks of the WLRA Gauss–Newton matrix)."""
    m, n = W.shape
    r = V.shape[-1]
    rows, pairs = chunk_sizes(1, m, n, r, W.element_size(), memory_budget)
    blocks = _column_blocks(r, pairs)
    return torch.cat([_normal_matrices(W[None, i:i + rows], V[None], blocks)[0] for i in range(0, m, rows)])


_SUB_BATCH_BYTES = 8 << 20  # CPU, per intra-op thread: systems factorised together, sized to stay in cache


def _cholesky_solve_(Hg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve H x = b for N augmented systems Hg = [H | b] (N, r, r+1) in place; only H's upper triangle is read.

    Blocked left-looking Cholesky H = RᵀR with the forward substitution Rᵀy = b carried in the last column, then
    the blocked back substitution R x = y (see the module docstring). Hg is overwritten by [R | y] (below the
    diagonal blocks: untouched). Returns (x (N, r), a view into Hg; failed (N,) bool): rows whose factorisation
    met a non-positive pivot, whose x is meaningless. Cost: r³/3 + 2r² FLOPs per system, almost all in batched
    GEMMs, plus r/β Cholesky factorisations and triangular inversions of β×β blocks, β = max(8, round(√r))."""
    N, r, _ = Hg.shape
    beta = max(8, round(r ** 0.5))
    eye = torch.eye(beta, dtype=Hg.dtype, device=Hg.device)
    failed = torch.zeros(N, dtype=torch.bool, device=Hg.device)
    steps = [(k0, min(r, k0 + beta)) for k0 in range(0, r, beta)]
    inverses = []
    for k0, k1 in steps:
        S = Hg[:, k0:k1, k0:]
        if k0:
            S = torch.baddbmm(S, Hg[:, :k0, k0:k1].mT, Hg[:, :k0, k0:], alpha=-1)
        R, info = torch.linalg.cholesky_ex(S[:, :, :k1 - k0], upper=True)
        failed |= info != 0
        R_inv = torch.linalg.solve_triangular(R, eye[:k1 - k0, :k1 - k0].expand_as(R), upper=True)
        inverses.append(R_inv)
        Hg[:, k0:k1, k0:] = R_inv.mT @ S
    x = Hg[:, :, r]
    for (k0, k1), R_inv in zip(reversed(steps), reversed(inverses)):
        rhs = x[:, k0:k1] - (Hg[:, k0:k1, k1:r] * x[:, None, k1:]).sum(-1)
        x[:, k0:k1] = (R_inv * rhs[:, None, :]).sum(-1)    # small matrix–vector products: faster than bmm
    return x, failed


def _pinv_solve(H: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Minimum-norm solution of H d = g for symmetric (near-)singular H (k, r, r), g (k, r): the fallback."""
    lam, Q = torch.linalg.eigh(H)
    cut = H.shape[-1] * torch.finfo(H.dtype).eps * lam.abs().amax(-1, keepdim=True)
    inv = torch.where(lam > cut, 1 / lam.clamp_min(torch.finfo(H.dtype).tiny), torch.zeros_like(lam))
    return (Q @ (inv * (Q.mT @ g[..., None])[..., 0])[..., None])[..., 0]


def _add_ridge_(H: torch.Tensor, reg: float) -> None:
    """H_i += λ_i I with λ_i = max(reg/r, eps)·tr(H_i) on the r×r systems H (…, r, ≥ r). The floor
    eps·tr(H) ≥ eps·‖H‖₂ keeps a numerically singular H (duplicate or vanishing directions) from turning
    rounding noise into an unbounded step; it is far below any fit tolerance."""
    r = H.shape[-2]
    diagonal = H[..., :r].diagonal(dim1=-2, dim2=-1)
    diagonal.add_(max(reg / r, torch.finfo(H.dtype).eps) * diagonal.sum(-1, keepdim=True))


def _solve_rows(A: torch.Tensor, W: torch.Tensor, V: torch.Tensor, centre: torch.Tensor | None, reg: float,
                blocks, workspace: Workspace) -> torch.Tensor:
    """The kernel on one chunk of rows (B, rows, n): their residuals and right-hand sides, augmented systems
    [H + λI | g] (in ``workspace`` buffers), the blocked Cholesky solve (in cache-sized sub-batches on the
    CPU) and, for any row whose factorisation failed, its system formed again and solved by ``_pinv_solve``.
    Returns their U (B, rows, r)."""
    B, rows, _ = A.shape
    r = V.shape[-1]
    R = A if centre is None else A - centre @ V.mT
    g = torch.matmul(W * R, V)                               # Vᵀ (W_i ⊙ residual_i) for every row
    del R
    Hg = workspace.get("systems", B * rows * r * (r + 1), A).view(B, rows, r, r + 1)
    Hg[..., r] = g
    _upper_normal_matrices(W, V, blocks, Hg, workspace)
    _add_ridge_(Hg, reg)
    systems, total = Hg.view(B * rows, r, r + 1), B * rows
    sub = total
    if A.device.type == "cpu":
        sub = max(1, _SUB_BATCH_BYTES * torch.get_num_threads() // (r * (r + 1) * A.element_size()))
    d = A.new_empty(total, r)
    failed = torch.empty(total, dtype=torch.bool, device=A.device)
    for i in range(0, total, sub):
        d[i:i + sub], failed[i:i + sub] = _cholesky_solve_(systems[i:i + sub])
    d = d.view(B, rows, r)
    for b, row in failed.view(B, rows).nonzero().tolist():  # rare: form the system again, solve it by eigh
        H = _normal_matrices(W[b:b + 1, row:row + 1], V[b:b + 1], blocks)[0]
        _add_ridge_(H, reg)
        d[b, row] = _pinv_solve(H, g[b, row:row + 1])[0]
    return d if centre is None else centre + d


def row_solve(A: torch.Tensor, W: torch.Tensor, V: torch.Tensor, centre: torch.Tensor | None = None, *,
              reg: float = 0.0, memory_budget: int = DEFAULT_MEMORY_BUDGET,
              workspace: Workspace | None = None) -> torch.Tensor:
    """Solve every row's (proximal) ridge-regularised weighted least squares; see the module docstring.

    A, W: (B, m, n) (any strides: transposed views are fine); V: (B, n, r); centre: (B, m, r) or None (0).
    Returns U (B, m, r). Rows are processed in chunks; scratch memory stays within ``memory_budget`` bytes
    (``chunk_sizes``), held in ``workspace`` (a new one if None: pass the same one to repeated calls to keep it
    mapped). Parallelism is torch's own (intra-op threads, or the GPU).
    """
    B, m, n = A.shape
    r = V.shape[-1]
    if reg < 0:
        raise ValueError(f"reg must be non-negative, got {reg}")
    out = A.new_empty(B, m, r)
    workspace = Workspace() if workspace is None else workspace
    rows, pairs = chunk_sizes(B, m, n, r, A.element_size(), memory_budget)
    blocks = _column_blocks(r, pairs)
    for i in range(0, m, rows):
        out[:, i:i + rows] = _solve_rows(A[:, i:i + rows], W[:, i:i + rows], V,
                                         None if centre is None else centre[:, i:i + rows], reg, blocks, workspace)
    return out
