"""The exact line search of the factored problem: along any line, f is a quartic polynomial in the step.

For a direction (dU, dV) at (U, V) with residual R = A − U Vᵀ,

    R(t) = A − (U + t dU)(V + t dV)ᵀ = R − t E₁ − t² E₂,     E₁ = dU Vᵀ + U dVᵀ,   E₂ = dU dVᵀ,
    f(t) − f(0) = −2 ⟨WR, E₁⟩ t + (‖E₁‖²_W − 2 ⟨WR, E₂⟩) t² + 2 ⟨W E₁, E₂⟩ t³ + ‖E₂‖²_W t⁴,

with ⟨X, Y⟩ = Σ X ⊙ Y and ‖X‖²_W = Σ W ⊙ X². Its global minimiser over t is a real root of the cubic f′(t) (the
quartic's leading coefficient is ≥ 0), found in float64 from the five coefficients. The step is exact whatever
the scale of the direction, so a method that searches this way needs no learning rate.

Cost: E₁ as one product [dU, U]·[V, dV]ᵀ (4mnr FLOPs), E₂ (2mnr), five weighted inner products O(mn); the new
residual R − t E₁ − t² E₂ then costs no product.
"""
from __future__ import annotations

import numpy as np
import torch

from solvers.objective import weighted_sum


def _dot(X: torch.Tensor, Y: torch.Tensor) -> float:
    return float(weighted_sum(X, Y))


def line_products(U: torch.Tensor, V: torch.Tensor, dU: torch.Tensor, dV: torch.Tensor):
    """(E₁, E₂) = (dU Vᵀ + U dVᵀ, dU dVᵀ), E₁ as one GEMM of inner dimension 2r."""
    E1 = torch.cat([dU, U], dim=1) @ torch.cat([V, dV], dim=1).mT
    return E1, dU @ dV.mT


def coefficients(W: torch.Tensor, WR: torch.Tensor, E1: torch.Tensor, E2: torch.Tensor) -> tuple:
    """(a₁, a₂, a₃, a₄) with f(t) − f(0) = a₁ t + a₂ t² + a₃ t³ + a₄ t⁴ (module docstring), as floats: five dot
    products and two products with W, O(mn)."""
    WE1 = W * E1
    WE2 = W * E2
    return (-2 * _dot(WR, E1), _dot(WE1, E1) - 2 * _dot(WR, E2), 2 * _dot(WE1, E2), _dot(WE2, E2))


def minimiser(coeffs: tuple) -> tuple[float, float]:
    """(t*, f(t*) − f(0)) for the quartic a₁t + a₂t² + a₃t³ + a₄t⁴: the best real stationary point, or (0, 0)
    when none decreases f (e.g. a zero direction)."""
    a1, a2, a3, a4 = coeffs
    derivative = np.trim_zeros([4 * a4, 3 * a3, 2 * a2, a1], "f")
    best = (0.0, 0.0)
    if len(derivative) < 2:
        return best
    roots = np.roots(derivative)
    for z in roots[np.abs(roots.imag) <= 1e-9 * (1 + np.abs(roots.real))].real:
        value = ((a4 * z + a3) * z + a2) * z * z + a1 * z
        if value < best[1]:
            best = (float(z), float(value))
    return best
