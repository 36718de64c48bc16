"""Nonlinear conjugate gradients on (U, V) in the grouped weighted metric, with the exact line search: monotone.

The loop of ``solvers.scaled_gd`` (same metric P, same exact quartic line search, same carried residual) with
the direction of preconditioned Polak–Ribière+ CG (Polak & Ribière 1969; the "+" of Powell 1986 / Gilbert &
Nocedal 1992), G = −½∇f:

    β = max(0, ⟨G_k, P⁻¹G_k − P⁻¹G_{k−1}⟩ / ⟨G_{k−1}, P⁻¹G_{k−1}⟩),     d_k = P⁻¹G_k + β d_{k−1},

restarting from d = P⁻¹G when d is not a descent direction (⟨G, d⟩ ≤ 0) and after each refresh of the metric.
On a quadratic with exact line searches this is preconditioned linear CG; the exact minimiser of the quartic
keeps that property along the way and needs no learning rate.
Cost per iteration: as ``scaled_gd`` (E₁, E₂ 6mnr, gradient 4mnr, P⁻¹G 2(m + n)r², O(mn)) plus O((m + n) r).
"""
from __future__ import annotations

import torch

from solvers.grouped_metric import GROUPS, REFRESH
from solvers.scaled_gd import LineState, ScaledGD


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.flatten(), b.flatten()))


class ScaledCG(ScaledGD):
    """Preconditioned PR+ nonlinear CG with the exact quartic line search; see the module docstring."""

    name = "scaled_cg"
    parameters = {"groups": GROUPS, "refresh": REFRESH}

    def direction(self, s: LineState) -> torch.Tensor:
        gpg = _dot(s.G, s.PG)
        D = s.PG
        if s.D is not None and s.PG_prev is not None and s.gpg_prev > 0:
            beta = max(0.0, (gpg - _dot(s.G, s.PG_prev)) / s.gpg_prev)
            conjugate = s.PG + beta * s.D
            if _dot(s.G, conjugate) > 0:
                D = conjugate
        s.PG_prev, s.gpg_prev = s.PG, gpg
        return D
