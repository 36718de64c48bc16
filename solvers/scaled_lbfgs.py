"""L-BFGS on the factors (U, V) in a weighted metric, with an Armijo line search: monotone.

Notation: x = (U, V), stacked as one (m + n) × r array; G(x) = −½∇f = ((W⊙R) V, (W⊙R)ᵀ U) with R = A − U Vᵀ;
P a fixed approximation of the block diagonal of ½∇²f (the rows' ALS normal matrices), built at the start (and
every ``refresh`` iterations): ``metric="joint"`` (the default, ``solvers.joint_metric``: each row's exact
diagonal in one jointly diagonalising basis) or ``"grouped"`` (``solvers.grouped_metric``: one scale per row within
K groups). The iteration runs in the metric's coordinates (``start``, ``unstack``), stacked factors in which f
and G keep their plain form: for ``joint`` x̃ = (U Q_U, V Q_U⁻ᵀ) when m ≥ n, where P⁻¹ is element-wise on the
U-block and two r×r products on the other; for ``grouped`` the rows in grouped order. L-BFGS with H₀ scaled by
P⁻¹ is invariant to such a linear change of variables. One iteration:

    d = H G, with H the L-BFGS inverse-Hessian estimate (Nocedal 1980) from the last ``memory`` pairs
        s_i = x_{i+1} − x_i, y_i = G_i − G_{i+1}, started from H₀ = γ P⁻¹ with γ = κ sᵀy / yᵀP⁻¹y of the newest
        pair (Nocedal & Wright's scaling, measured in the metric, times ``gamma_scale`` κ = 1.75: with κ = 1 the
        accepted unit steps fall short of the minimum along d by ≈ 1.5× on Fisher-weighted matrices, and κ in
        [1.5, 2] takes 7–8 % fewer iterations over eleven of them, docs/solvers-fastest.md; γ = 1 until the
        first pair);
    t = 1, then while f(x + t d) > f(x) − 2 c t ⟨G, d⟩:  t ← the minimiser of the parabola through f(x), its
        slope −2⟨G, d⟩ and f(x + t d), kept within [t/10, t/2];
    x ← x + t d.

Calibration: after the ``calibrate``-th step from a build of the metric, each row's block P_i (a row of U or of V
in the metric's coordinates) is rescaled once by that step's secant ratio, measured against the whole step's:

    P_i⁻¹ ← c_i P_i⁻¹,   c_i = clip((s_iᵀy_i / y_iᵀP_i⁻¹y_i) / (sᵀy / yᵀP⁻¹y), 1/10, 10)   (c_i = 1 where s_iᵀy_i ≤ 0),

and the memory restarts in the corrected metric (γ from the same pair). The metrics model each row's curvature
from the weights alone; the secant pair measures it, row by row, along the first steps' direction, at the cost of
one pass over y and two row-wise products, once.

H G is evaluated in the compact form of Byrd, Nocedal & Schnabel (1994), with ŷ_i = P⁻¹ y_i: with a = SᵀG,
b = ŶᵀG, R_S the upper triangle of SᵀY (chronological order), D its diagonal,
    u = R_S⁻¹ a,   p = R_S⁻ᵀ ((D + γ YᵀŶ) u − γ b),   H G = γ P⁻¹G + S p − γ Ŷ u.
At ρ = 0.5 the factors hold half as many numbers as A, so passes over vectors of the factors' size are not cheap.
The memory keeps the steps and the chain of P⁻¹G's they started from (ŷ_i = P⁻¹G_i − P⁻¹G_{i+1}, never formed;
``PairStore``) and is read in two products per iteration (a, b and GᵀP⁻¹G for the new G, from which every product
of the new pair follows; and H G itself) where the two-loop recursion makes 4·memory vector passes; P⁻¹ is
applied once per iteration, to the new G. ``factors`` maps the iterate back to (U, V) for the trace.

A pair with sᵀy ≤ 0 empties the memory (H stays positive definite, and the chain of P⁻¹G's has no gap); a
direction that is not one of descent (⟨G, d⟩ ≤ 0) restarts from d = γ P⁻¹ G with an empty memory. Every accepted
step satisfies the Armijo condition, so f never increases. When no step above rounding level decreases f, the run
stops with "converged".

Why this method: on Fisher-weighted LM matrices the curvature of a row of U is Vᵀ diag(W_i) V, whose scale and
shape vary by orders of magnitude between rows; Adam's per-coordinate scaling and ScaledGD's (VᵀV)⁻¹ do not
capture it, the metrics do at O((m + n) r²) per step, and L-BFGS adds the coupling between U and V that they
leave out. docs/solvers-fastest.md has the measurements.

Cost per iteration: the residual at the trial point (2mnr FLOPs; once more per backtrack, rare: the scaled unit
step is almost always accepted), the gradient (4mnr), P⁻¹G (joint: 4 min(m, n) r², the shorter block's two r×r
products; grouped: 2(m + n)r²), ≈ 2·(2 memory + 1)·(m + n)r for the compact products and O(mn) element-wise work;
a rebuild adds the metric's build (its module docstring), one residual and one gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from solvers.base import SolverStop
from solvers.first_order import FirstOrderSolver
from solvers.grouped_metric import GROUPS, GroupedMetric
from solvers.joint_metric import JointDiagonalMetric
from solvers.objective import stacked_half_gradient, weighted_residual
from solvers.params import Choice, Int, Real

MAX_TRIALS = 30  # backtracking trials per iteration before the line search gives up
CALIBRATION_CLIP = 10.0  # a row's metric scale moves by at most this factor either way in the calibration


class PairStore:
    """The L-BFGS memory as a chain: memory + 1 slots taken in cyclic order, slot i holding (P⁻¹G_i, s_i), the
    metric gradient at the start of step i and the step itself. The y_i = G_i − G_{i+1} and ŷ_i = P⁻¹y_i are never
    formed: ŷ_i = P⁻¹G_i − P⁻¹G_{i+1} is the difference of the P⁻¹G's of consecutive slots, and the slot after the
    newest pair (``current``) holds P⁻¹G at the current iterate, its s buffer receiving the next direction.

    The scalars of the compact form are kept in Python floats, indexed by slot: sy[i][j] = s_iᵀy_j (i no newer
    than j), yy[i][j] = ŷ_iᵀy_j = y_iᵀP⁻¹y_j (symmetric: P is), and for the current G: a[i] = s_iᵀG and
    pi[i] = (P⁻¹G_i)ᵀG, so that b_i = ŷ_iᵀG = pi[i] − pi[i + 1] and g = GᵀP⁻¹G = pi[current]. Every product the
    compact form needs then comes out of one product of the store with the new gradient G_new (``update``), with
    y = G_old − G_new:
        s_iᵀy = a_old[i] − a_new[i],   ŷ_iᵀy = b_old[i] − b_new[i]                     (kept pairs),
        sᵀy = sᵀG_old − a_new[new],    ŷᵀy = g_old − 2 (P⁻¹G_old)ᵀG_new + g_new        (the new pair);
    g_new itself is the product with P⁻¹G_new, which the caller writes into the next slot first. The two-vector
    form (s_i, ŷ_i) would need a pass to form ŷ and one for g_new on top of the same products.

    The rows (slot-major: row 2i is P⁻¹G_i, row 2i + 1 is s_i) from the oldest kept pair to the current slot's P⁻¹G
    form one cyclic range, so each product with the store is at most two BLAS calls, and no other row is read:
    the store needs no initialisation. The scalar algebra (two triangular solves of order ≤ memory) runs on the
    host: it is O(memory²), and torch's per-call overhead on tensors that small would cost more than the vector
    work of a small problem."""

    def __init__(self, memory: int, like: torch.Tensor):
        self.memory, self.slots, self.shape = memory, memory + 1, like.shape
        self.rows = torch.empty(2 * self.slots, like.numel(), dtype=like.dtype, device=like.device)
        self.current = 0
        self.order: list[int] = []  # kept slots, oldest first; cyclically contiguous, ending just before current
        self.sy = [[0.0] * self.slots for _ in range(self.slots)]
        self.yy = [[0.0] * self.slots for _ in range(self.slots)]
        self.a, self.pi = [0.0] * self.slots, [0.0] * self.slots

    @property
    def next_slot(self) -> int:
        """The slot the next iterate's P⁻¹G goes into: a free one, or the oldest pair's when the memory is full
        (that pair leaves with the new one)."""
        return (self.current + 1) % self.slots

    def pg(self, slot: int) -> torch.Tensor:
        """The P⁻¹G buffer of ``slot``, shaped like the iterate."""
        return self.rows[2 * slot].view(self.shape)

    def clear(self) -> None:
        """Empty the memory; the current iterate's P⁻¹G stays."""
        self.order = []

    def drop_pair(self) -> None:
        """The step was taken but its pair is not kept (the metric changed under it): empty the memory and move to
        the next slot, whose P⁻¹G the caller has written."""
        self.order, self.current = [], self.next_slot

    def _segments(self, first: int, count: int):
        """(lo, hi) row ranges of the cyclic range of ``count`` rows from row ``first``."""
        end, total = first + count, 2 * self.slots
        return [(first, end)] if end <= total else [(first, total), (0, end - total)]

    def _products(self, G: torch.Tensor, first: int, count: int) -> dict[int, float]:
        """{row: rowᵀG} for the cyclic range of rows, one matrix-vector product per segment."""
        out = {}
        for lo, hi in self._segments(first, count):
            out.update(zip(range(lo, hi), torch.mv(self.rows[lo:hi], G.view(-1)).tolist()))
        return out

    def _b(self, slot: int, pi: list[float]) -> float:
        return pi[slot] - pi[(slot + 1) % self.slots]

    def update(self, G_new: torch.Tensor, s_g_old: float, g_old: float) -> tuple[float, float, float]:
        """After a step s (in the current slot's s buffer) from G_old to G_new, with P⁻¹G_new in
        ``pg(next_slot)``, s_g_old = sᵀG_old and g_old = G_oldᵀP⁻¹G_old: keep the pair (dropping the oldest beyond
        ``memory``) if sᵀy > 0, else empty the memory (H stays positive definite, and a chain with a missing link
        has no ŷ), and move to the next slot. The products read every kept row but the leaving pair's s.
        Returns (sᵀy, ŷᵀy, g_new = G_newᵀP⁻¹G_new)."""
        f, nxt, o = self.current, self.next_slot, self.order
        stay = o[1:] if len(o) == self.memory else o
        first = stay[0] if stay else f
        rows = self._products(G_new, 2 * first, (2 * (nxt - first)) % (2 * self.slots) + 1)
        a_new, pi_new = self.a[:], self.pi[:]
        for row, value in rows.items():
            (pi_new if row % 2 == 0 else a_new)[row // 2] = value
        g_new = pi_new[nxt]
        sy_new = s_g_old - a_new[f]
        yy_new = g_old - 2 * pi_new[f] + g_new
        if sy_new > 0:
            for i in stay:
                self.sy[i][f] = self.a[i] - a_new[i]
                self.yy[i][f] = self.yy[f][i] = self._b(i, self.pi) - self._b(i, pi_new)
            self.sy[f][f], self.yy[f][f] = sy_new, yy_new
            self.order = stay + [f]
        else:
            self.order = []
        self.a, self.pi, self.current = a_new, pi_new, nxt
        return sy_new, yy_new, g_new

    def direction(self, gamma: float, g: float) -> tuple[torch.Tensor, float]:
        """(d = H G in the compact form (module docstring), written into the current slot's s buffer; the slope
        ⟨G, H G⟩), given g = GᵀP⁻¹G; with no pairs kept, d = γ P⁻¹G. The slope is γ g + pᵀa − γ uᵀb: scalars
        already known, no pass over G. The step s = t d then needs no pass of its own when t = 1."""
        f, o = self.current, self.order
        self.pi[f] = g
        out = self.rows[2 * f + 1]
        if not o:
            return torch.mul(self.rows[2 * f], gamma, out=out).view(self.shape), gamma * g
        k, sy, yy, a = len(o), self.sy, self.yy, self.a
        b = [self._b(i, self.pi) for i in o]
        u = [0.0] * k  # R_S u = a, R_S upper triangular: back substitution
        for i in reversed(range(k)):
            u[i] = (a[o[i]] - sum(sy[o[i]][o[j]] * u[j] for j in range(i + 1, k))) / sy[o[i]][o[i]]
        p = [0.0] * k  # R_Sᵀ p = (D + γ YᵀŶ) u − γ b: forward substitution
        for i in range(k):
            rhs = sy[o[i]][o[i]] * u[i] + gamma * sum(yy[o[i]][o[j]] * u[j] for j in range(k)) - gamma * b[i]
            p[i] = (rhs - sum(sy[o[j]][o[i]] * p[j] for j in range(i))) / sy[o[i]][o[i]]
        # H G = γ P⁻¹G_f + S p − γ Σ u_i (P⁻¹G_i − P⁻¹G_{i+1}): per row, in the cyclic order of the range
        coef = []
        for i in range(k):
            coef += [gamma * ((u[i - 1] if i else 0.0) - u[i]), p[i]]
        coef.append(gamma * (1.0 + u[-1]))
        first = True
        for lo, hi in self._segments(2 * o[0], 2 * k + 1):
            c = torch.tensor(coef[:hi - lo], dtype=out.dtype, device=out.device)
            coef = coef[hi - lo:]
            if first:
                torch.mv(self.rows[lo:hi].mT, c, out=out)
            else:
                out.addmv_(self.rows[lo:hi].mT, c)
            first = False
        slope = gamma * g + sum(p[i] * a[o[i]] - gamma * u[i] * b[i] for i in range(k))
        return out.view(self.shape), slope


@dataclass
class LBFGSState:
    X: torch.Tensor          # U and V stacked, in the metric's coordinates and layout (``metric.blocks``)
    X_trial: torch.Tensor    # the line search's trial point
    A: torch.Tensor          # A and W in the metric's order (``permute``)
    W: torch.Tensor
    f: float
    G: torch.Tensor          # −½∇f at X
    G_next: torch.Tensor     # the same at the next iterate
    PG: torch.Tensor         # P⁻¹ G, the current slot's buffer in the store
    g: float                 # Gᵀ P⁻¹ G
    metric: GroupedMetric | JointDiagonalMetric
    pairs: PairStore
    R: torch.Tensor          # m × n scratch: the residual of the last point evaluated
    WR: torch.Tensor         # W ⊙ R there
    gamma: float = 1.0
    k: int = 0
    built_at: int = 0        # the iteration of the metric's last build


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.flatten(), b.flatten()))


class ScaledLBFGS(FirstOrderSolver):
    """L-BFGS with H₀ = γ P⁻¹ (a weighted metric) and an Armijo line search; see the module docstring."""

    name = "scaled_lbfgs"
    family = "quasi-newton"
    parameters = {"memory": Int(3, ge=1, doc="(s, y) pairs kept"),
                  "metric": Choice("joint", ("joint", "grouped"),
                                   doc="joint: solvers.joint_metric (each row's exact diagonal in one basis); "
                                       "grouped: solvers.grouped_metric (one scale per row in K groups)"),
                  "groups": Int(GROUPS.default, ge=1, doc="row (and column) groups of metric=grouped (unused by joint)"),
                  "refresh": Int(0, ge=0, doc="iterations between rebuilds of the metric, each of which empties the "
                                            "memory; 0 (the default): never, see docs/solvers-fastest.md"),
                  "calibrate": Int(2, ge=0, doc="the iteration (after each build of the metric) whose step rescales "
                                                "each row's block of the metric by its secant ratio; 0: never"),
                  "gamma_scale": Real(1.75, gt=0, doc="κ in H₀ = κ (sᵀy / yᵀP⁻¹y) P⁻¹ (1: Nocedal & Wright's "
                                                      "scaling; the default is the race's, docs/solvers-fastest.md)"),
                  "armijo": Real(1e-4, gt=0, lt=1, doc="sufficient-decrease constant c")}
    monotone = True
    exact_on = frozenset({"constant", "separable", "planted", "completion"})
    converged_after = 2  # one short step (after a restart, or a backtrack) is common; two in a row mean a stall

    @classmethod
    def flops(cls, m: int, n: int, r: int) -> float:
        """The three m×n×r products (residual, two gradient products) and the default (joint) metric's
        4 min(m, n) r²."""
        return 6.0 * m * n * r + 4.0 * min(m, n) * r * r

    def start(self, dp, U, V):
        if self.params["metric"] == "joint":
            metric = JointDiagonalMetric(dp.W, dp.generator)
        else:
            metric = GroupedMetric(dp.W, self.params["groups"], dp.generator)
        A, W, X = metric.permute(dp.A), metric.W, metric.start(U, V)
        pairs = PairStore(self.params["memory"], X)
        s = LBFGSState(X=X, X_trial=torch.empty_like(X), A=A, W=W, f=0.0, G=torch.empty_like(X),
                       G_next=torch.empty_like(X), PG=pairs.pg(pairs.current), g=0.0, metric=metric, pairs=pairs,
                       R=torch.empty_like(A), WR=torch.empty_like(A))
        s.f = self.residual(s, X)
        metric.apply_stacked(stacked_half_gradient(s.WR, X, s.G, metric.blocks), out=s.PG)
        s.g = _dot(s.G, s.PG)
        return s

    def step(self, dp, s: LBFGSState) -> LBFGSState:
        every = self.params["refresh"]
        if every and s.k and s.k % every == 0:  # a new metric (and coordinates): the kept pairs belong to the old
            s.X = s.metric.rebuild(s.X)
            self.residual(s, s.X)
            stacked_half_gradient(s.WR, s.X, s.G, s.metric.blocks)
            s.metric.apply_stacked(s.G, out=s.PG)
            s.g = _dot(s.G, s.PG)
            s.pairs.clear()
            s.built_at = s.k
        d, slope = s.pairs.direction(s.gamma, s.g)
        if slope <= 0:  # not a descent direction: restart from the scaled gradient
            s.pairs.clear()
            d, slope = s.pairs.direction(s.gamma, s.g)
        t = self.line_search(dp, s, d, slope)
        if t != 1:
            d.mul_(t)  # the slot now holds the step s = t d
        G_new = stacked_half_gradient(s.WR, s.X_trial, s.G_next, s.metric.blocks)
        calibrated = s.k - s.built_at + 1 == self.params["calibrate"] and self.calibrate(s, d, G_new)
        PG_new = s.metric.apply_stacked(G_new, out=s.pairs.pg(s.pairs.next_slot))
        if calibrated:  # a calibration empties the memory: this step's pair belongs to the old metric
            g_new = _dot(G_new, PG_new)
            s.pairs.drop_pair()
        else:
            sy, y_hy, g_new = s.pairs.update(G_new, t * slope, s.g)
            if sy > 0 and y_hy > 0:
                s.gamma = self.params["gamma_scale"] * sy / y_hy
        s.X, s.X_trial = s.X_trial, s.X
        s.G, s.G_next, s.PG, s.g = G_new, s.G, PG_new, g_new
        s.k += 1
        return s

    def calibrate(self, s: LBFGSState, step: torch.Tensor, G_new: torch.Tensor) -> bool:
        """Rescale each row's block of the metric by its secant ratio on this step (module docstring), empty the
        memory and set γ for the new metric; False, changing nothing, when the step has no positive curvature."""
        y = torch.sub(s.G, G_new)
        Py = s.metric.apply_stacked(y)
        sy_rows, yy_rows = self.row_dots(s, step, y), self.row_dots(s, y, Py)
        sy, yy = float(sy_rows.double().sum()), float(yy_rows.double().sum())
        if not (sy > 0 and yy > 0):
            return False
        ratio = torch.where((sy_rows > 0) & (yy_rows > 0), sy_rows / (yy_rows * (sy / yy)), torch.ones_like(sy_rows))
        scale = ratio.clamp(1 / CALIBRATION_CLIP, CALIBRATION_CLIP)
        s.metric.rescale_rows(scale)
        s.pairs.clear()
        s.gamma = self.params["gamma_scale"] * sy / float((scale * yy_rows).double().sum())
        return True

    def line_search(self, dp, s: LBFGSState, d: torch.Tensor, slope: float) -> float:
        """The first t that passes the Armijo test; leaves x + t d in s.X_trial, W ⊙ R there in s.WR, f in s.f."""
        c = self.params["armijo"]
        t, floor = 1.0, None
        for _ in range(MAX_TRIALS):
            X = torch.add(s.X, d, alpha=t, out=s.X_trial)
            f_new = self.residual(s, X)
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

    @staticmethod
    def residual(s: LBFGSState, X: torch.Tensor) -> float:
        """f at the stacked factors X, leaving the residual in s.R and W ⊙ R in s.WR."""
        return float(weighted_residual(s.A, s.W, *s.metric.blocks(X), s.R, s.WR)[0])

    @staticmethod
    def row_dots(s: LBFGSState, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """⟨a_i, b_i⟩ for each row i of U, then of V, of two stacked vectors (m + n values)."""
        return torch.cat([torch.linalg.vecdot(x, y, dim=-1) for x, y in zip(s.metric.blocks(a), s.metric.blocks(b))])

    def factors(self, s: LBFGSState):
        return s.metric.unstack(s.X)
