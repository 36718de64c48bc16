"""L-BFGS on the factors (U, V) in the grouped weighted metric, with an Armijo line search: monotone.

Notation: x = (U, V), stacked as one (m + n) × r array; G(x) = −½∇f = ((W⊙R) V, (W⊙R)ᵀ U) with R = A − U Vᵀ;
P the metric of ``solvers.grouped_metric`` (≈ the block diagonal of ½∇²f, built at the start and every
``refresh`` iterations). One iteration:

    d = H G, with H the L-BFGS inverse-Hessian estimate (Nocedal 1980) from the last ``memory`` pairs
        s_i = x_{i+1} − x_i, y_i = G_i − G_{i+1}, started from H₀ = γ P⁻¹ with γ = sᵀy / yᵀP⁻¹y of the newest
        pair (Nocedal & Wright's scaling, measured in the metric);
    t = 1, then while f(x + t d) > f(x) − 2 c t ⟨G, d⟩:  t ← the minimiser of the parabola through f(x), its
        slope −2⟨G, d⟩ and f(x + t d), kept within [t/10, t/2];
    x ← x + t d.

H G is evaluated in the compact form of Byrd, Nocedal & Schnabel (1994), with ŷ_i = P⁻¹ y_i stored beside each
pair: with a = SᵀG, b = ŶᵀG, R_S the upper triangle of SᵀY (chronological order), D its diagonal,
    u = R_S⁻¹ a,   p = R_S⁻ᵀ ((D + γ YᵀŶ) u − γ b),   H G = γ P⁻¹G + S p − γ Ŷ u.
At ρ = 0.5 the factors hold half as many numbers as A, so passes over vectors of the factors' size are not cheap:
the compact form reads the stored vectors in three products per iteration (the new pair's inner products with
the store, a and b for the next G, and H G itself) where the two-loop recursion makes 5·memory vector passes,
and P⁻¹ is applied once per iteration, to the new G. The iterate is kept in the metric's grouped order
(``GroupedMetric.stack``; A and W are permuted once), which ``factors`` undoes for the trace.

A pair with sᵀy ≤ 0 is not stored (H stays positive definite); a direction that is not one of descent
(⟨G, d⟩ ≤ 0) restarts from d = γ P⁻¹ G with an empty memory. Every accepted step satisfies the Armijo
condition, so f never increases. When no step above rounding level decreases f, the run stops with "converged".

Why this method: on Fisher-weighted LM matrices the curvature of a row of U is Vᵀ diag(W_i) V, whose scale varies
by orders of magnitude between rows; Adam's per-coordinate scaling and ScaledGD's (VᵀV)⁻¹ do not capture it,
the grouped metric does at O((m + n) r²) per step, and L-BFGS adds the coupling between U and V that the metric
leaves out. docs/solvers-fastest.md has the measurements.

Cost per iteration: the residual at the trial point (2mnr FLOPs; once more per backtrack, rare: the scaled unit
step is almost always accepted), the gradient (4mnr), P⁻¹G (2(m + n)r²), ≈ 8·memory·(m + n)r for the compact
products and O(mn) element-wise work; a rebuild adds K(2(m + n)r² + 2r³) and ``memory`` applications of P⁻¹.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from solvers.base import SolverStop
from solvers.first_order import FirstOrderSolver
from solvers.grouped_metric import GROUPS, REFRESH, GroupedMetric
from solvers.objective import stacked_half_gradient, weighted_residual
from solvers.params import Int, Real

MAX_TRIALS = 30  # backtracking trials per iteration before the line search gives up


class PairStore:
    """Up to ``memory`` pairs (s_i, ŷ_i = P⁻¹y_i) in memory + 1 slots (a new pair never overwrites a kept one
    before it is accepted), with the upper triangle of SᵀY, YᵀŶ (symmetric: P is) and, for the current G,
    a = SᵀG and b = ŶᵀG (float64, on the host, indexed by slot). The y_i themselves are not kept: every product
    the compact form needs involves the newest y, and comes out of one product with the store per iteration."""

    def __init__(self, memory: int, like: torch.Tensor):
        self.memory, slots = memory, memory + 1
        self.vectors = torch.zeros(2, slots, like.numel(), dtype=like.dtype, device=like.device)  # S, Ŷ
        self.sy = torch.zeros(slots, slots, dtype=torch.float64)  # sy[i, j] = s_iᵀ y_j, i older than j
        self.yy = torch.zeros(slots, slots, dtype=torch.float64)  # yy[i, j] = ŷ_iᵀ y_j = y_iᵀ P⁻¹ y_j
        self.a = torch.zeros(slots, dtype=torch.float64)
        self.b = torch.zeros(slots, dtype=torch.float64)
        self.order: list[int] = []  # kept slots, oldest first

    def clear(self) -> None:
        self.order = []

    def free_slot(self) -> int:
        return next(i for i in range(self.memory + 1) if i not in self.order)

    def pair(self, slot: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (s, ŷ) buffers of ``slot``, shaped like the iterate."""
        return self.vectors[0, slot].view_as(like), self.vectors[1, slot].view_as(like)

    def update(self, slot: int, yg: torch.Tensor) -> tuple[float, float]:
        """With (s, ŷ) of the newest pair written into ``slot`` and yg = [y; G] (2 × size, G the new gradient):
        one product over the store gives every s_iᵀy, ŷ_iᵀy (the new pair's) and a, b (for G).
        Returns (sᵀy, ŷᵀy) of the new pair; ``commit`` keeps it."""
        products = (self.vectors.view(-1, self.vectors.shape[-1]) @ yg.mT).double().cpu()
        slots = self.memory + 1
        self.a, self.b = products[:slots, 1], products[slots:, 1]
        self._new = (products[:slots, 0], products[slots:, 0])
        return float(self._new[0][slot]), float(self._new[1][slot])

    def commit(self, slot: int) -> None:
        """Keep the pair of the last ``update`` (dropping the oldest beyond ``memory``)."""
        self.sy[:, slot], self.yy[:, slot] = self._new
        self.yy[slot, :] = self._new[1]
        self.order.append(slot)
        if len(self.order) > self.memory:
            self.order.pop(0)

    def direction(self, PG: torch.Tensor, gamma: float, out: torch.Tensor) -> torch.Tensor:
        """H G in the compact form (module docstring), into ``out``; γ P⁻¹ G with no pairs kept."""
        if not self.order:
            return torch.mul(PG, gamma, out=out)
        o = torch.tensor(self.order)
        sy, yy = self.sy[o][:, o], self.yy[o][:, o]
        upper = torch.triu(sy)
        u = torch.linalg.solve_triangular(upper, self.a[o, None], upper=True)
        rhs = (torch.diag(torch.diagonal(sy)) + gamma * yy) @ u - gamma * self.b[o, None]
        p = torch.linalg.solve_triangular(upper.mT, rhs, upper=False)
        coef = torch.zeros(2, self.memory + 1, dtype=torch.float64)
        coef[0, o], coef[1, o] = p[:, 0], -gamma * u[:, 0]
        torch.addmv(PG.view(-1), self.vectors.view(-1, self.vectors.shape[-1]).mT,
                    coef.flatten().to(out.dtype).to(out.device), beta=gamma, out=out.view(-1))
        return out


@dataclass
class LBFGSState:
    X: torch.Tensor          # (m + n) × r: U on top of V, in the metric's grouped order
    X_trial: torch.Tensor    # the line search's trial point
    m: int
    A: torch.Tensor          # A and W in grouped order
    W: torch.Tensor
    f: float
    yg: torch.Tensor         # 2 × (m + n) × r: [y of the last step; G = −½∇f at X]
    yg_next: torch.Tensor    # the same for the next step
    PG: torch.Tensor         # P⁻¹ G
    PG_next: torch.Tensor
    d: torch.Tensor          # the search direction
    metric: GroupedMetric
    pairs: PairStore
    R: torch.Tensor          # m × n scratch: the residual of the last point evaluated
    WR: torch.Tensor         # W ⊙ R there
    gamma: float = 1.0
    k: int = 0

    @property
    def G(self) -> torch.Tensor:
        return self.yg[1]


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.flatten(), b.flatten()))


class ScaledLBFGS(FirstOrderSolver):
    """L-BFGS with H₀ = γ P⁻¹ (the grouped weighted metric) and an Armijo line search; see the module docstring."""

    name = "scaled_lbfgs"
    family = "quasi-newton"
    parameters = {"memory": Int(3, ge=1, doc="(s, y) pairs kept"),
                  "groups": GROUPS, "refresh": REFRESH,
                  "armijo": Real(1e-4, gt=0, lt=1, doc="sufficient-decrease constant c")}
    monotone = True
    exact_on = frozenset({"constant", "separable", "planted", "completion"})
    converged_after = 2  # one short step (after a restart, or a backtrack) is common; two in a row mean a stall

    @classmethod
    def flops(cls, m: int, n: int, r: int) -> float:
        """The three m×n×r products (residual, two gradient products) and the metric's 2(m + n)r²."""
        return 6.0 * m * n * r + 2.0 * (m + n) * r * r

    def start(self, dp, U, V):
        m = U.shape[0]
        metric = GroupedMetric(dp.W, self.params["groups"], dp.generator)
        A, W, X = metric.permute(dp.A), metric.W, metric.stack(U, V)
        metric.build(X)
        R, WR = torch.empty_like(A), torch.empty_like(A)
        f, WR = weighted_residual(A, W, X[:m], X[m:], R, WR)
        yg = X.new_empty((2, *X.shape))
        stacked_half_gradient(WR, X, m, out=yg[1])
        s = LBFGSState(X=X, X_trial=torch.empty_like(X), m=m, A=A, W=W, f=float(f), yg=yg,
                       yg_next=torch.empty_like(yg), PG=metric.apply_stacked(yg[1]), PG_next=torch.empty_like(X),
                       d=torch.empty_like(X), metric=metric, pairs=PairStore(self.params["memory"], X), R=R, WR=WR)
        return s

    def step(self, dp, s: LBFGSState) -> LBFGSState:
        every = self.params["refresh"]
        if every and s.k and s.k % every == 0:  # a new metric: the kept ŷ belong to the old one
            s.metric.build(s.X)
            s.metric.apply_stacked(s.G, out=s.PG)
            s.pairs.clear()
        d = s.pairs.direction(s.PG, s.gamma, out=s.d)
        slope = _dot(s.G, d)
        if slope <= 0:  # not a descent direction: restart from the scaled gradient
            s.pairs.clear()
            d = s.pairs.direction(s.PG, s.gamma, out=s.d)
            slope = _dot(s.G, d)
        t = self.line_search(dp, s, d, slope)
        y, G_new = s.yg_next
        stacked_half_gradient(s.WR, s.X_trial, s.m, out=G_new)
        PG_new = s.metric.apply_stacked(G_new, out=s.PG_next)
        slot = s.pairs.free_slot()
        step, pre_change = s.pairs.pair(slot, s.X)
        torch.mul(d, t, out=step)
        torch.sub(s.G, G_new, out=y)
        torch.sub(s.PG, PG_new, out=pre_change)
        sy, y_hy = s.pairs.update(slot, s.yg_next.view(2, -1))
        if sy > 0:
            s.pairs.commit(slot)
            if y_hy > 0:
                s.gamma = sy / y_hy
        s.X, s.X_trial = s.X_trial, s.X
        s.yg, s.yg_next, s.PG, s.PG_next = s.yg_next, s.yg, PG_new, s.PG
        s.k += 1
        return s

    def line_search(self, dp, s: LBFGSState, d: torch.Tensor, slope: float) -> float:
        """The first t that passes the Armijo test; leaves x + t d in s.X_trial, W ⊙ R there in s.WR, f in s.f."""
        c, m = self.params["armijo"], s.m
        t, floor = 1.0, None
        for _ in range(MAX_TRIALS):
            X = torch.add(s.X, d, alpha=t, out=s.X_trial)
            f_new = float(weighted_residual(s.A, s.W, X[:m], X[m:], s.R, s.WR)[0])
            if f_new <= s.f - 2 * c * t * slope:
                s.f = f_new
                return t
            curvature = (f_new - s.f + 2 * slope * t) / (t * t)  # the parabola f − 2 slope t + curvature t²
            t = min(max(slope / curvature if curvature > 0 else 0.5 * t, 0.1 * t), 0.5 * t)
            if floor is None:  # the step below which x + t d rounds to x
                tiny = torch.finfo(dp.dtype)
                floor = tiny.eps * float(s.X.norm()) / max(float(d.norm()), tiny.tiny)
            if t <= floor:
                break
        raise SolverStop("converged", "line search found no decrease above rounding level")

    def factors(self, s: LBFGSState):
        return s.metric.unstack(s.X)
