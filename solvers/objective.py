"""The objective's gradients, shared by the factored solvers (the objective itself is ``problems.objective``).

    R = A − U Vᵀ,   f = Σ W ⊙ R²,   ∇_U f = −2 (W ⊙ R) V,   ∇_V f = −2 (W ⊙ R)ᵀ U.

The kernels do the least memory traffic torch allows: R comes out of one GEMM with A as its addend, the
factor −2 rides in the gradient GEMMs, and f is one reduction over the product (W ⊙ R) ⊙ R. A solver that calls
them every iteration passes its own buffers (``out``), so no m×n temporary is allocated per iteration.
"""
from __future__ import annotations

import torch


def residual(A: torch.Tensor, U: torch.Tensor, V: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """R = A − U Vᵀ, one GEMM with A as the addend (2mnr FLOPs); (B, m, n) stacks too; into ``out`` if given."""
    if A.dim() == 2:
        return torch.addmm(A, U, V.mT, alpha=-1, out=out)
    return torch.baddbmm(A, U, V.mT, alpha=-1, out=out)


def weighted_residual(A: torch.Tensor, W: torch.Tensor, U: torch.Tensor, V: torch.Tensor,
                      R: torch.Tensor | None = None, WR: torch.Tensor | None = None):
    """(f, W ⊙ R) at (U, V): f as a float64 tensor of the batch shape (``weighted_sum``), O(mnr + mn).
    ``R`` and ``WR`` are optional buffers of A's shape (``R`` is scratch: it holds the residual afterwards)."""
    R = residual(A, U, V, out=R)
    WR = torch.mul(W, R, out=WR)
    return weighted_sum(WR, R), WR


def weighted_sum(WR: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Σ WR ⊙ R per problem, as float64: one dot product per row in the working dtype (torch forms the product
    as an m×n temporary), the m row sums added in float64. The rounding error is that of n-term sums (~1e-9
    relative in float32 at n = 576), where one float32 dot product over all mn entries errs by ~1e-6: as much as
    a late iteration's decrease, so line searches and stopping tests in float32 would stall on rounding noise.
    O(mn)."""
    return torch.linalg.vecdot(WR, R, dim=-1).double().sum(-1)


def gradients(WR: torch.Tensor, U: torch.Tensor, V: torch.Tensor, out_u: torch.Tensor | None = None,
              out_v: torch.Tensor | None = None, scale: float = -2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(∇_U f, ∇_V f) = (−2 WR V, −2 WRᵀ U) from WR = W ⊙ R: two GEMMs, 4mnr FLOPs; into the buffers if given.
    ``scale`` replaces the −2 (1: the products WR V, WRᵀ U themselves, i.e. −½ the gradients)."""
    if WR.dim() == 2:
        gu = torch.mm(WR, V, out=out_u)
        gv = torch.mm(WR.mT, U, out=out_v)
    else:
        gu = torch.bmm(WR, V, out=out_u)
        gv = torch.bmm(WR.mT, U, out=out_v)
    if scale != 1:
        gu.mul_(scale), gv.mul_(scale)
    return gu, gv


def value_and_grad(A: torch.Tensor, W: torch.Tensor, U: torch.Tensor, V: torch.Tensor, buffers: dict | None = None):
    """f and its gradients, sharing one residual. Cost: three m×n×r products, O(mnr), and two m×n
    temporaries — none when ``buffers`` (a dict, filled on first use and reused by later calls with the same
    shapes) is given. Leading batch dimensions (B, m, n) are B problems at once. Returns (f as a float64 tensor of
    the batch shape — 0-d for one problem — on the device, no host sync; ∇_U, ∇_V)."""
    if buffers is None:
        f, WR = weighted_residual(A, W, U, V)
        return (f, *gradients(WR, U, V))
    if "R" not in buffers:
        buffers.update(R=torch.empty_like(A), WR=torch.empty_like(A), gu=torch.empty_like(U), gv=torch.empty_like(V))
    f, WR = weighted_residual(A, W, U, V, buffers["R"], buffers["WR"])
    return (f, *gradients(WR, U, V, buffers["gu"], buffers["gv"]))


def stacked_half_gradient(WR: torch.Tensor, X: torch.Tensor, out: torch.Tensor, blocks) -> torch.Tensor:
    """−½∇f = (WR V, WRᵀ U) at the stacked factors X, into ``out`` in X's layout (4mnr FLOPs); ``blocks`` views
    a stacked vector as its (U, V) blocks (a metric's ``blocks``)."""
    gradients(WR, *blocks(X), *blocks(out), scale=1.0)
    return out
