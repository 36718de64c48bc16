"""Initial points for iterative solvers.

``init`` may be
- "best_closed_form": run each closed-form baseline (``BASELINES``) and keep the lowest objective;
- "random": Gaussian factors scaled so that ‖U Vᵀ‖_F ≈ ‖A‖_F, drawn from the solve's seeded generator;
- any other registered solver name: that solver's result on the same problem, device, dtype and seed;
- a ``SolveResult`` or a (U, V) pair: used as given (copied to the solve's device, dtype and normalised units,
  ``DeviceProblem.from_problem_units``).
"""
from __future__ import annotations

import math

import torch

from solvers.linalg import balanced_factors
from solvers.registry import get
from solvers.result import SolveResult

BASELINES = ("svd", "fwsvd_row", "fwsvd_col", "fwsvd_two_sided", "separable")


def factor_scale(A: torch.Tensor, rank: int) -> torch.Tensor:
    """s = (‖A‖_F / √(mnr))^½: the entry size of balanced rank-r factors of a matrix as large as A (m×n, or a
    batch (B, m, n): one s per problem, shape A.shape[:-2]; float64)."""
    m, n = A.shape[-2:]
    return (torch.linalg.matrix_norm(A).double() / math.sqrt(m * n * rank)).sqrt()


def random_factors(dp) -> tuple[torch.Tensor, torch.Tensor]:
    """U, V with i.i.d. N(0, s²) entries, s = ``factor_scale``, so E‖U Vᵀ‖_F² = ‖A‖_F²."""
    m, n = dp.shape
    r = dp.rank
    scale = float(factor_scale(dp.A, r))
    return dp.randn(m, r) * scale, dp.randn(n, r) * scale


def best_closed_form(dp) -> tuple[torch.Tensor, torch.Tensor]:
    """The baseline with the smallest objective on this problem (cost: one SVD per baseline)."""
    candidates = [get(name).fit(dp) for name in BASELINES]
    return min(candidates, key=lambda uv: dp.objective(*uv))


def initial_factors(init, dp, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Resolve ``init`` (see module docstring) to factors on dp's device and dtype."""
    m, n = dp.shape
    if isinstance(init, str):
        if init == "random":
            return random_factors(dp)
        if init == "best_closed_form":
            return best_closed_form(dp)
        solver = get(init)
        if solver.closed_form:
            return solver.fit(dp)
        res = solver.solve(dp.problem, seed=seed, device=dp.device, dtype=dp.dtype)
        init = res
    if isinstance(init, SolveResult):
        U, V = init.U, init.V
    elif isinstance(init, (tuple, list)) and len(init) == 2:
        U, V = (torch.as_tensor(x) for x in init)
    else:
        raise TypeError("init must be a solver name, 'random', a SolveResult or a (U, V) pair; "
                        f"got {type(init).__name__}")
    if U.dim() != 2 or V.dim() != 2 or U.shape != (m, dp.rank) or V.shape != (n, dp.rank):
        raise ValueError(f"init factors must be U ({m}×{dp.rank}) and V ({n}×{dp.rank}); "
                         f"got {tuple(U.shape)} and {tuple(V.shape)}")
    U, V = dp.from_problem_units(U.to(dp.device).clone(), V.to(dp.device).clone())
    if not all(math.isfinite(float(x.abs().amax())) for x in (U, V)):  # amax propagates NaN; isfinite is slow
        raise ValueError("init factors contain NaN/Inf")
    return U, V


def batched_initial_factors(A: torch.Tensor, W: torch.Tensor, rank: int, init,
                            seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Starting factors U (B, m, r), V (B, n, r) for B stacked problems A, W (B, m, n) (the batched solvers'
    ``init``): None or "svd" (each A's truncated SVD, balanced), "random" (seeded Gaussian scaled as in
    ``random_factors``, per problem) or a (U, V) pair of tensors of those shapes. Checks the stack first:
    A and W of one (B, m, n) shape, 1 ≤ rank ≤ min(m, n) (ValueError otherwise)."""
    if A.dim() != 3 or A.shape != W.shape:
        raise ValueError(f"A and W must be (B, m, n) tensors of one shape, got {tuple(A.shape)}, {tuple(W.shape)}")
    if not 1 <= rank <= min(A.shape[1:]):
        raise ValueError(f"rank must be in [1, {min(A.shape[1:])}], got {rank}")
    B, m, n = A.shape
    if init is None or init == "svd":
        P, s, Qh = torch.linalg.svd(A, full_matrices=False)
        return balanced_factors(P[..., :rank], s[..., :rank, None].mT, Qh[..., :rank, :].mT)
    if init == "random":
        g = torch.Generator().manual_seed(int(seed))
        scale = factor_scale(A, rank).cpu()[:, None, None]
        U = torch.randn(B, m, rank, generator=g, dtype=torch.float64) * scale
        V = torch.randn(B, n, rank, generator=g, dtype=torch.float64) * scale
        return U.to(A.device, A.dtype), V.to(A.device, A.dtype)
    if isinstance(init, (tuple, list)) and len(init) == 2:
        U, V = (torch.as_tensor(x).to(A.device, A.dtype).clone() for x in init)
        if U.shape != (B, m, rank) or V.shape != (B, n, rank):
            raise ValueError(f"init must be U ({B}×{m}×{rank}) and V ({B}×{n}×{rank}); "
                             f"got {tuple(U.shape)} and {tuple(V.shape)}")
        return U, V
    raise ValueError(f"init must be None, 'svd', 'random' or a (U, V) pair of tensors, got {init!r}")
