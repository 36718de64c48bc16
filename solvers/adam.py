"""Adam (Kingma & Ba 2015) on the factors (U, V) of Σ W ⊙ (A − U Vᵀ)², full batch or row-block minibatches.

Update per block X ∈ {U, V} with gradient g (see ``solvers.first_order``):
    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   X ← X − α · m̂ / (√v̂ + ε·g₀)
with bias corrections m̂ = m / (1 − β₁ᵏ), v̂ = v / (1 − β₂ᵏ).

Scale-free defaults (so they work unchanged on real Fisher weights):
- the step is α = lr · s with s = (‖A‖_F / √(mnr))^½ the typical entry of balanced factors (Adam moves each
  coordinate by about α per step, so ``lr`` is a fraction of the factors' own size);
- ε is relative: ε·g₀ with g₀ the RMS of the first gradient, so rescaling W does not change the iterates;
- the rate halves after ``patience`` epochs without a new lowest objective (``first_order.Plateau``), which
  lets full-batch Adam settle instead of hovering at a distance ∝ α from the minimum.
Cost per iteration: one gradient, O(|I| n r) for a block of |I| rows (O(mnr) full batch), plus O((m + n) r).

``solve_batched`` runs the same full-batch iteration on B same-shape problems at once (batched products, one
α, ε and plateau record per problem): the first-order counterpart of ``solvers.als.solve_batched``.
"""
from __future__ import annotations

import torch

from problems.objective import weighted_squared_error
from solvers.base import converged, default_tolerance, exact_level
from solvers.budget import check_budget
from solvers.first_order import (BATCH_ROWS, MOMENTUM, PATIENCE, FirstOrderSolver, MomentumSolver, MomentumState,
                                 Plateau)
from solvers.initial import batched_initial_factors, factor_scale
from solvers.objective import value_and_grad
from solvers.params import Real


def relative_eps(eps: float, grad_u: torch.Tensor, grad_v: torch.Tensor) -> torch.Tensor:
    """ε·g₀ with g₀ the RMS of all entries of the gradient (grad_u, grad_v), one per problem of a batch."""
    entries = grad_u.shape[-2] * grad_u.shape[-1] + grad_v.shape[-2] * grad_v.shape[-1]
    rms = ((grad_u.square().sum((-2, -1)) + grad_v.square().sum((-2, -1))) / entries).sqrt()
    return eps * rms.clamp_min(torch.finfo(grad_u.dtype).tiny)


def adam_update_(params: list, grads: list, firsts: list, seconds: list, k: int, beta1: float, beta2: float,
                 alpha: float, eps: float) -> None:
    """Adam's iteration k ≥ 1 in place on the tensors ``params`` (their moments ``firsts``, ``seconds`` advanced with
    ``grads``), by torch's fused Adam kernel: one pass over each block (the module docstring's update written out
    with separate tensor operations takes nine, with four temporaries)."""
    step = torch.tensor(float(k), device=params[0].device)
    torch._fused_adam_(params, grads, firsts, seconds, [], [step] * len(params), lr=alpha, beta1=beta1,
                       beta2=beta2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)


def solve_batched(A: torch.Tensor, W: torch.Tensor, rank: int, *,
                  max_iter: int = FirstOrderSolver.default_max_iter, tol: float | None = None, lr: float = 1e-2,
                  beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, patience: int = 200, seed: int = 0,
                  init=None, callback=None):
    """Full-batch Adam on B problems at once: A, W (B, m, n) on any device, float32/float64.

    Per problem b this is exactly the ``adam`` solver's full-batch iteration (its own α_b = lr·s_b, ε_b and
    plateau record, the same fused update), and it stops where that solver would (``solvers.base.converged``: relative decrease
    ≤ tol, None meaning the solver's default for the dtype, or an exact fit): from then on its factors are
    frozen. The B problems share each batched product, O(B·mnr) per iteration. The loop ends when every
    problem has stopped, after ``max_iter`` iterations, or when ``callback(k, f, active)`` returns a true
    value; it is called with the (B,) float64 objectives of iterate k = 0, 1, ... and the (B,) mask of the
    problems still iterating.
    init: None/"svd", "random" or (U, V) tensors (``solvers.initial.batched_initial_factors``).
    Returns U (B, m, r), V (B, n, r), the objectives (B,) float64 and the number of iterations done. A problem whose
    iterates diverge (too large an ``lr``) is not stopped: its objective ends far above Σ W A² (or non-finite),
    and the other problems, which share only the batched products, are unaffected.
    """
    Adam(lr=lr, beta1=beta1, beta2=beta2, eps=eps, patience=patience)  # validates the parameters
    check_budget(max_iter=max_iter, tol=tol, seed=seed)
    U, V = batched_initial_factors(A, W, rank, init, seed)
    tol = default_tolerance(Adam.default_tol, A.dtype) if tol is None else tol
    exact = exact_level(weighted_squared_error(A, W), A.dtype)
    scales, plateau, rates = factor_scale(A, rank).tolist(), Plateau(patience), [lr] * A.shape[0]
    first_u, first_v, second_u, second_v = (torch.zeros_like(X) for X in (U, V, U, V))  # Adam's moments
    f_prev, eps_b, it, active, buffers = None, None, 0, None, {}
    while True:
        f, grad_u, grad_v = value_and_grad(A, W, U, V, buffers)
        active = torch.ones_like(f, dtype=torch.bool) if f_prev is None else active & ~converged(f_prev, f, tol, exact)
        if (callback is not None and callback(it, f, active)) or it >= max_iter or not bool(active.any()):
            return U, V, f, it
        if eps_b is None:
            eps_b = relative_eps(eps, grad_u, grad_v).tolist()
        it += 1
        for b in active.nonzero().flatten().tolist():  # a stopped problem's factors stay frozen
            adam_update_([U[b], V[b]], [grad_u[b], grad_v[b]], [first_u[b], first_v[b]],
                         [second_u[b], second_v[b]], it, beta1, beta2, rates[b] * scales[b], eps_b[b])
        rates = [rate * decay for rate, decay in zip(rates, plateau.observe(f).tolist())]
        f_prev = f


class Adam(MomentumSolver):
    """Adam on (U, V); see the module docstring for the update and how ``lr`` is scaled."""

    name = "adam"
    parameters = {"lr": Real(1e-2, gt=0, doc="step as a fraction of the factors' entry size s"),
                  "beta1": MOMENTUM, "beta2": Real(0.999, ge=0, lt=1),
                  "eps": Real(1e-8, gt=0, doc="relative to the first gradient's RMS"),
                  "batch_rows": BATCH_ROWS, "patience": PATIENCE}
    exact_on = frozenset({"constant", "separable", "planted", "completion"})
    solve_batched = staticmethod(solve_batched)

    def prepare(self, dp, state: MomentumState) -> None:
        state.extra["scale"] = float(factor_scale(dp.A, dp.rank))
        for key in ("mU", "mV", "vU", "vV"):
            state.buffers[key] = torch.zeros_like(state.U if key.endswith("U") else state.V)

    def adam_steps(self, state: MomentumState, grad_u, grad_v) -> tuple[torch.Tensor, torch.Tensor]:
        """Take Adam's step in place and return the displacements (ΔU, ΔV) it made, O((m + n) r)."""
        before = state.U.clone(), state.V.clone()
        self._adam_update(state, grad_u, grad_v)
        return state.U - before[0], state.V - before[1]

    def update(self, dp, state: MomentumState, f, grad_u, grad_v) -> None:
        self._adam_update(state, grad_u, grad_v)

    def _adam_update(self, state: MomentumState, grad_u, grad_v) -> None:
        """Adam's step in place (``adam_update_``), ε relative to the first gradient's RMS (scale invariance)."""
        if "eps" not in state.extra:
            state.extra["eps"] = float(relative_eps(self.params["eps"], grad_u, grad_v))
        p, buf = self.params, state.buffers
        adam_update_([state.U, state.V], [grad_u, grad_v], [buf["mU"], buf["mV"]], [buf["vU"], buf["vV"]], state.k,
                     p["beta1"], p["beta2"], state.lr * state.extra["scale"], state.extra["eps"])
