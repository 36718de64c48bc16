"""Batched row-wise weighted least squares: the kernel of ALS (``solvers.als``).

For fixed V (n×r), each row i of U solves its own r×r normal equations

    H_i u_i = b_i,    H_i = Σ_j W_ij v_j v_jᵀ = Vᵀ diag(W_i) V,    b_i = Vᵀ (W_i ⊙ A_i).

All m normal matrices come out of ONE matrix product G = W · K, where K ∈ R^{n×P}, P = r(r+1)/2, holds the
products K_{j,(k,l)} = V_jk V_jl of every pair k ≤ l of V's columns (a Khatri–Rao-style trick): G_{i,(k,l)} =
(H_i)_kl. The sweep therefore runs at GEMM speed; the r×r systems are then solved by one batched Cholesky.
(K is built in column blocks k ∈ [k0, k1), l ≥ k0, which recomputes the few mirrored pairs inside each block's
diagonal square — a few per cent — in exchange for plain strided copies instead of gathers and scatters.)

Regularisation is a *proximal* ridge: given a centre c_i (the current row, or 0), the row minimises

    f_i(u) + λ_i ‖u − c_i‖²,    λ_i = reg · tr(H_i) / r   (floored at eps·tr(H_i), the dtype's resolution),

i.e. u_i = c_i + (H_i + λ_i I)⁻¹ Vᵀ (W_i ⊙ (A_i − V c_i)). The ridge is relative to each row's own scale, so
it keeps rows with tiny or zero weight well-posed; centred at the current iterate it damps the step without
moving the fixed point, and f_i(u_i) ≤ f_i(c_i) − λ_i‖u_i − c_i‖² (a monotone decrease). Centred at 0 it is
the ordinary ridge. When Cholesky fails (a singular or indefinite system in floating point) the row falls back
to the minimum-norm correction from an eigendecomposition (eigenvalues below r·eps·λ_max dropped), which
still cannot increase f_i.

Memory: rows are processed in chunks and column pairs in blocks sized from ``memory_budget`` (bytes), so the
chunk × r × r normal matrices, the n × block K and the chunk × block G never exceed it (one row and one
pair-row k are always processed, whatever the budget). Everything carries a leading batch dimension B, so
``solvers.als.solve_batched`` advances B problems with the same batched GEMMs and Cholesky.

Cost of one call on B problems of m rows (FLOPs, as counted by ``bench/als_perf.py``):
    2·m·n·P  (G = W·K)  +  2·m·n·r (b; another 2·m·n·r for the residual when centred)
    + m·r³/3 (Cholesky) + 2·m·r² (triangular solves),  per problem.
"""
from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of scratch for one chunk (1 GiB)


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


def plan(batch: int, m: int, n: int, r: int, element_size: int, memory_budget: int) -> tuple[int, int]:
    """(rows per chunk, pairs per block) keeping one chunk's scratch within ``memory_budget`` bytes.

    Half the budget goes to per-row tensors (H and its Cholesky factor, 2r², plus residual rows, 3n, and
    right-hand sides), half to the pair block (K: n per pair, G: rows per pair)."""
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be positive bytes, got {memory_budget}")
    half = memory_budget / (2 * batch * element_size)
    rows = int(max(1, min(m, half // (2 * r * r + 3 * n + 4 * r))))
    pairs = int(max(r, half // (n + rows)))
    return rows, pairs


def _normal_matrices(Wc: torch.Tensor, V: torch.Tensor, blocks) -> torch.Tensor:
    """H (B, rows, r, r) with H_i = Vᵀ diag(W_i) V, one GEMM G = W·K per column block.

    For the block k ∈ [k0, k1): K_{j,(k,l)} = V_jk V_jl for l ∈ [k0, r), so G fills rows k0:k1 of every H_i
    from the diagonal rightwards, and its transpose the mirrored columns (plain strided copies)."""
    B, rows, _ = Wc.shape
    r = V.shape[-1]
    H = Wc.new_empty(B, rows, r, r)
    for k0, k1 in blocks:
        K = (V[:, :, k0:k1, None] * V[:, :, None, k0:]).flatten(2)     # (B, n, (k1−k0)(r−k0))
        G = torch.matmul(Wc, K).view(B, rows, k1 - k0, r - k0)
        H[:, :, k0:k1, k0:] = G
        H[:, :, k0:, k0:k1] = G.transpose(-1, -2)
        del K, G  # free this block before the next is built: peak = H + one block, as ``plan`` assumes
    return H


def normal_matrices(W: torch.Tensor, V: torch.Tensor, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> torch.Tensor:
    """H (m, r, r) with H_i = Vᵀ diag(W_i) V for a single m×n W and n×r V, row chunks and pair blocks sized
    from ``memory_budget`` as in ``row_solve`` (the r×r diagonal blocks of the WLRA Gauss–Newton matrix)."""
    m, n = W.shape
    r = V.shape[-1]
    rows, pairs = plan(1, m, n, r, W.element_size(), memory_budget)
    blocks = _column_blocks(r, pairs)
    return torch.cat([_normal_matrices(W[None, i:i + rows], V[None], blocks)[0] for i in range(0, m, rows)])


_threads_lock = threading.Lock()
_threads_users = [0, 1]  # [solves inside the context now, thread count to restore]


@contextmanager
def _one_thread_per_matrix(device: torch.device):
    """On the CPU, torch's batched Cholesky and triangular solves call LAPACK once per small matrix, where
    intra-call threads add synchronisation but little speed. Set one intra-op thread for the duration and
    yield the thread count it replaced, so the caller can split the batch over that many Python threads
    instead (torch releases the GIL): every core then works on its own matrices. On CUDA nothing changes
    (yields 1). torch's thread count is process-wide, so concurrent solves share one save/restore (counted
    under a lock) and the count is restored when the last one leaves."""
    if device.type != "cpu":
        yield 1
        return
    with _threads_lock:
        if _threads_users[0] == 0:
            _threads_users[1] = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users[0] += 1
        workers = _threads_users[1]
    try:
        yield workers
    finally:
        with _threads_lock:
            _threads_users[0] -= 1
            if _threads_users[0] == 0:
                torch.set_num_threads(_threads_users[1])


@functools.lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="wlrbench-solve")


def _cholesky_solve(H: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d, info): d = H⁻¹ g for SPD H (…, r, r) by Cholesky and two triangular solves (torch's CPU
    cholesky_solve was 4× slower than these at r = 209); info ≠ 0 marks rows whose factorisation failed."""
    L, info = torch.linalg.cholesky_ex(H)
    y = torch.linalg.solve_triangular(L, g[..., None], upper=False)
    return torch.linalg.solve_triangular(L.mT, y, upper=True)[..., 0], info


def _pinv_solve(H: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Minimum-norm solution of H d = g for symmetric (near-)singular H (k, r, r), g (k, r): the fallback."""
    lam, Q = torch.linalg.eigh(H)
    cut = H.shape[-1] * torch.finfo(H.dtype).eps * lam.abs().amax(-1, keepdim=True)
    inv = torch.where(lam > cut, 1 / lam.clamp_min(torch.finfo(H.dtype).tiny), torch.zeros_like(lam))
    return (Q @ (inv * (Q.mT @ g[..., None])[..., 0])[..., None])[..., 0]


def _solve_rows(H: torch.Tensor, g: torch.Tensor, reg: float) -> torch.Tensor:
    """d = (H + λI)⁻¹ g per row, λ = max(reg/r, eps)·tr(H); batched Cholesky, eigen fallback for failures.

    The floor eps·tr(H) ≥ eps·‖H‖₂ keeps a numerically singular H (duplicate or vanishing directions) from
    turning rounding noise into an unbounded step; it is far below any fit tolerance."""
    r = H.shape[-1]
    diag = H.diagonal(dim1=-2, dim2=-1)
    diag.add_(max(reg / r, torch.finfo(H.dtype).eps) * diag.sum(-1, keepdim=True))
    with _one_thread_per_matrix(H.device) as workers:
        rows = H.shape[1]
        if workers > 1 and rows >= 2 * workers:  # rows split over the cores, one LAPACK thread each
            step = -(-rows // workers)
            parts = list(_pool(workers).map(lambda i: _cholesky_solve(H[:, i:i + step], g[:, i:i + step]),
                                            range(0, rows, step)))
            d, info = torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
        else:
            d, info = _cholesky_solve(H, g)
        failed = info != 0
        if bool(failed.any()):
            d[failed] = _pinv_solve(H[failed], g[failed])
    return d


def row_solve(A: torch.Tensor, W: torch.Tensor, V: torch.Tensor, centre: torch.Tensor | None = None, *,
              reg: float = 0.0, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> torch.Tensor:
    """Solve every row's (proximal) ridge-regularised weighted least squares; see the module docstring.

    A, W: (B, m, n) (any strides: transposed views are fine); V: (B, n, r); centre: (B, m, r) or None (0).
    Returns U (B, m, r). Scratch memory stays within ``memory_budget`` bytes (``plan``).
    """
    B, m, n = A.shape
    r = V.shape[-1]
    if reg < 0:
        raise ValueError(f"reg must be non-negative, got {reg}")
    rows, pairs = plan(B, m, n, r, A.element_size(), memory_budget)
    blocks = _column_blocks(r, pairs)
    out = A.new_empty(B, m, r)
    for i in range(0, m, rows):
        Ac, Wc = A[:, i:i + rows], W[:, i:i + rows]
        R = Ac if centre is None else Ac - centre[:, i:i + rows] @ V.mT
        g = torch.matmul(Wc * R, V)                          # Vᵀ (W_i ⊙ residual_i) for every row
        del R
        d = _solve_rows(_normal_matrices(Wc, V, blocks), g, reg)
        out[:, i:i + rows] = d if centre is None else centre[:, i:i + rows] + d
    return out


def batched_objective(A: torch.Tensor, W: torch.Tensor, U: torch.Tensor, V: torch.Tensor,
                      chunk_elems: int = 1 << 24) -> torch.Tensor:
    """f_b = Σ W_b ⊙ (A_b − U_b V_bᵀ)² for each b, float64 (B,), in row chunks of ≤ chunk_elems entries."""
    B, m, n = A.shape
    rows = max(1, chunk_elems // max(B * n, 1))
    total = torch.zeros(B, dtype=torch.float64, device=A.device)
    for i in range(0, m, rows):
        R = A[:, i:i + rows] - U[:, i:i + rows] @ V.mT
        total += (W[:, i:i + rows] * R * R).sum(dim=(1, 2), dtype=torch.float64)
    return total
