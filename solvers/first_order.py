"""What the factored first-order solvers (``gd``, ``adam``, ``sgd``, ``adam_sgd``) share.

All four minimise f(U, V) = Σ W ⊙ (A − U Vᵀ)² with the analytic gradients of ``solvers.objective.value_and_grad``
(∇_U f = −2 (W⊙R) V, ∇_V f = −2 (W⊙R)ᵀ U, R = A − U Vᵀ; O(mnr) per evaluation). This module holds the pieces
that make them scale-free, so that default learning rates work unchanged on synthetic problems (W ~ 1) and on
real Fisher weights (W ~ 1e-10, A ~ 1e-2):

- ``Curvature``: per-block Lipschitz bounds L_U, L_V of the gradient at the current point. The Hessian's
  quadratic form in a direction (dU, dV) is 2 Σ W ⊙ (dU Vᵀ + U dVᵀ)² − 4 ⟨W ⊙ R, dU dVᵀ⟩. Its U-block is
  2 Σ_i dU_iᵀ (Vᵀ diag(W_i) V) dU_i, and ‖Vᵀ diag(W_i) V‖₂ ≤ min(max_j W_ij ‖V‖₂², Σ_j W_ij ‖v_j‖²) (the second,
  a trace bound, is far smaller than max(W) ‖V‖₂² when W is heavy-tailed); likewise for V. The coupling term is
  at most 2 ‖W ⊙ R‖_F ‖dU‖ ‖dV‖ with ‖W ⊙ R‖_F² ≤ max W · f, so
      L_U = 2 max_i min(max_j W_ij ‖V‖₂², Σ_j W_ij ‖v_j‖²) + 2 √(max W · f)      (L_V symmetrically).
  Steps lr / L_U, lr / L_V are invariant to rescaling W and A, and per-block steps are not fooled by an
  imbalance U → U T, V → V T⁻ᵀ (which gradient flow preserves). Cost O(mn + (m + n) r²).
- ``solvers.initial.factor_scale``: the typical entry of balanced factors with ‖U Vᵀ‖_F = ‖A‖_F, s = (‖A‖_F / √(mnr))^½;
  Adam moves every coordinate by about lr per step, so its step is lr·s.
- ``solvers.linalg.rebalance``: U, V → U', V' with U'V'ᵀ = UVᵀ and U'ᵀU' = V'ᵀV', which evens out the block
  curvatures L_U ≈ L_V. Cost O((m + n) r²).
- ``RowBatches`` / ``batch_value_and_grad``: optional row-block minibatches.
- ``Plateau``: halves a learning rate when the objective stops reaching new lows.
- ``FirstOrderSolver``: budget defaults and the FLOP model of all four; ``BATCH_ROWS``, ``PATIENCE``, ``MOMENTUM``:
  parameter declarations they share;
- ``MomentumSolver``: the loop shared by ``adam``, ``sgd`` and ``adam_sgd`` (batches, plateau decay, the
  state); a subclass writes only ``update``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from solvers.base import IterativeSolver
from solvers.objective import value_and_grad
from solvers.params import Int, Real


class Curvature:
    """Block Lipschitz bounds (L_U, L_V) at (U, V) for objective value f: see the module docstring.

    With a row block I (``rows``) the bounds are those of the gradients ``batch_value_and_grad`` returns:
    the exact partial in U_I, and (m/|I|) ∇_V f_I, whose bound is m/|I| times the block's; f is then the
    block's estimate (m/|I|) f_I as that function returns it.
    """

    def __init__(self, W: torch.Tensor):
        self.W = W
        self.wmax = float(W.max())
        self.row_max, self.col_max = W.amax(1), W.amax(0)

    def __call__(self, U: torch.Tensor, V: torch.Tensor, f: float, rows: torch.Tensor | None = None):
        W, row_max, col_max, scale = self.W, self.row_max, self.col_max, 1.0
        if rows is not None:
            scale = U.shape[0] / rows.numel()
            W, row_max, U = W[rows], row_max[rows], U[rows]
            col_max = W.amax(0)
        coupling = 2 * math.sqrt(self.wmax * max(f, 0.0) / scale)
        norm_u, norm_v = (torch.linalg.eigvalsh(X.T @ X)[-1] for X in (U, V))
        lu = torch.minimum(row_max * norm_v, W @ V.square().sum(1)).max()
        lv = torch.minimum(col_max * norm_u, W.T @ U.square().sum(1)).max()
        tiny = torch.finfo(U.dtype).tiny
        return max(2 * float(lu) + coupling, tiny), max(scale * (2 * float(lv) + coupling), tiny)


def inner(a: tuple, b: tuple) -> float:
    """⟨a, b⟩ summed over paired blocks, e.g. inner((dU, dV), (gU, gV)) = Σ dU⊙gU + Σ dV⊙gV (float64 sums)."""
    return float(sum((x * y).sum(dtype=torch.float64) for x, y in zip(a, b)))


class RowBatches:
    """Row-block minibatches: each epoch visits the rows of A in a fresh seeded random order, ``rows`` at a
    time (the last block of an epoch may be smaller). ``rows`` = 0 or ≥ m means full batch (``next`` → None)."""

    def __init__(self, m: int, rows: int, generator: torch.Generator, device=None):
        self.m, self.device = m, device
        self.rows = rows if 0 < rows < m else 0
        self.generator = generator
        self._order: list[torch.Tensor] = []

    @property
    def full(self) -> bool:
        return self.rows == 0

    def next(self) -> tuple[torch.Tensor | None, bool]:
        """(row indices or None for the full batch, whether this block ends an epoch)."""
        if self.full:
            return None, True
        if not self._order:
            order = torch.randperm(self.m, generator=self.generator).to(self.device)
            self._order = list(order.split(self.rows))
        block = self._order.pop(0)
        return block, not self._order


def batch_value_and_grad(dp, U: torch.Tensor, V: torch.Tensor, rows: torch.Tensor | None,
                         buffers: dict | None = None):
    """f and gradients on a row block I (all rows when ``rows`` is None; then into ``buffers`` if given, see
    ``value_and_grad``: the returned gradients live there until the next call).

    f separates over rows given V, so the U-rows of the block get their exact partial gradient and the other
    rows zero; ∇_V f = Σ_blocks ∇_V f_I is estimated without bias by (m/|I|) ∇_V f_I, and f by (m/|I|) f_I.
    Cost O(|I| n r).
    """
    if rows is None:
        return value_and_grad(dp.A, dp.W, U, V, buffers)
    f, gu, gv = value_and_grad(dp.A[rows], dp.W[rows], U[rows], V)
    scale = U.shape[0] / rows.numel()
    grad_u = torch.zeros_like(U)
    grad_u[rows] = gu
    return f * scale, grad_u, gv * scale


@dataclass
class Plateau:
    """Learning-rate decay on plateaus: after ``patience`` epochs without a new lowest objective, multiply
    the rate by ``factor``. (An epoch is one iteration in full batch, m/rows iterations with minibatches.)
    Elementwise: a batch of objectives (one per problem) keeps one record per problem, on their device; a single
    objective given as a float is kept as floats (no tensor work in a solver's loop)."""

    patience: int
    factor: float = 0.5
    best: torch.Tensor | float | None = None    # lowest objective so far
    waited: torch.Tensor | int | None = None    # epochs since it was reached

    def observe(self, f):
        """Record one epoch's objective(s); returns the rate multiplier(s), 1 or ``factor`` (a float for a float f,
        else a float64 tensor)."""
        if isinstance(f, float):
            self.best, self.waited = (f, 0) if self.best is None or f < self.best else (self.best, self.waited + 1)
            if 0 < self.patience <= self.waited:
                self.waited = 0
                return self.factor
            return 1.0
        f = torch.as_tensor(f, dtype=torch.float64)
        if self.best is None:
            self.best, self.waited = torch.full_like(f, math.inf), torch.zeros_like(f, dtype=torch.int64)
        improved = f < self.best
        self.best = torch.where(improved, f, self.best)
        self.waited = torch.where(improved, 0, self.waited + 1)
        decay = (self.waited >= self.patience) & (self.patience > 0)
        self.waited = torch.where(decay, 0, self.waited)
        return 1.0 - (1.0 - self.factor) * decay.to(torch.float64)


@dataclass
class MomentumState:
    """Iterate, per-block buffers (first/second moments or heavy-ball velocity), rate and bookkeeping."""

    U: torch.Tensor
    V: torch.Tensor
    batches: RowBatches
    plateau: Plateau
    curvature: Curvature
    lr: float  # the current rate multiplier (starts at the ``lr`` parameter; the plateau rule halves it)
    buffers: dict = field(default_factory=dict)
    k: int = 0  # updates done
    rows: torch.Tensor | None = None  # the current row block (None: full batch)
    epoch_f: float = 0.0  # objective estimate accumulated over the current epoch
    epoch_blocks: int = 0
    extra: dict = field(default_factory=dict)
    scratch: dict = field(default_factory=dict)  # the full-batch gradient's buffers (``value_and_grad``)


# Declarations shared by the momentum solvers (``solvers.params``).
BATCH_ROWS = Int(0, ge=0, doc="rows per minibatch; 0: full batch")
PATIENCE = Int(200, ge=0, doc="epochs without a new lowest objective before the rate halves; 0: never")
MOMENTUM = Real(0.9, ge=0, lt=1)


class FirstOrderSolver(IterativeSolver):
    """Common ground of the four solvers: family, budget (20 000 iterations; relative decrease 1e-12) and the
    FLOP model of one full-batch iteration, the three m×n×r products of ``value_and_grad`` (U Vᵀ, (W⊙R) V,
    (W⊙R)ᵀ U; the O(mn) element-wise work and the O((m + n) r) update are not counted)."""

    family = "first-order"
    default_max_iter: ClassVar[int] = 20000
    default_tol: ClassVar[float] = 1e-12

    @classmethod
    def flops(cls, m: int, n: int, r: int) -> float:
        return 6.0 * m * n * r


class MomentumSolver(FirstOrderSolver):
    """The loop of ``adam``, ``sgd`` and ``adam_sgd``: draw a row block (or the full batch), evaluate f and
    the gradients there (O(|I| n r)), let the subclass's ``update`` move (U, V), and once per epoch feed the
    epoch's objective to the plateau rule. A subclass declares its own parameters (including ``lr``,
    ``batch_rows``, ``patience``) and implements ``update(dp, state, f, grad_u, grad_v)``."""

    def start(self, dp, U, V):
        batches = RowBatches(dp.shape[0], self.params["batch_rows"], dp.generator, dp.device)
        state = MomentumState(U=U, V=V, batches=batches, plateau=Plateau(self.params["patience"]),
                              curvature=Curvature(dp.W), lr=self.params["lr"])
        self.prepare(dp, state)
        return state

    def prepare(self, dp, state: MomentumState) -> None:
        """Hook: allocate buffers / derived constants in ``state``."""

    def update(self, dp, state: MomentumState, f: float, grad_u: torch.Tensor, grad_v: torch.Tensor) -> None:
        """Move state.U, state.V given the (block) objective estimate f and gradients at them."""
        raise NotImplementedError

    def step(self, dp, state: MomentumState) -> MomentumState:
        state.rows, epoch_end = state.batches.next()
        f, grad_u, grad_v = batch_value_and_grad(dp, state.U, state.V, state.rows, state.scratch)
        f = float(f)
        state.k += 1
        self.update(dp, state, f, grad_u, grad_v)
        state.epoch_f += f
        state.epoch_blocks += 1
        if epoch_end:
            state.lr *= float(state.plateau.observe(state.epoch_f / state.epoch_blocks))
            state.epoch_f, state.epoch_blocks = 0.0, 0
        return state


def heavy_ball(x: torch.Tensor, velocity: torch.Tensor, grad: torch.Tensor, step: float,
               momentum: float) -> torch.Tensor:
    """Polyak momentum: velocity ← μ·velocity + step·grad; x ← x − velocity (in place on ``velocity``;
    returns the new x). With a constant step this is torch.optim.SGD's form; keeping the step inside the
    velocity stays stable when the step changes between iterations (per-block Lipschitz steps on minibatches,
    plateau decay). Cost O(size of x)."""
    velocity.mul_(momentum).add_(grad, alpha=step)
    return x - velocity
