"""pymanopt's Riemannian conjugate gradient on the manifold of rank-r matrices: the general-purpose manifold
method a user would try (needs ``pip install pymanopt==2.2.1``, the ``manifold`` extra; without it the solver
refuses every problem with that line).

Minimises f(X) = Σ W ⊙ (A − X)² over M_r = {X ∈ R^{m×n} : rank X = r} (``pymanopt.manifolds.FixedRankEmbedded``,
points X = u diag(s) vᵀ with orthonormal u, v) with ``pymanopt.optimizers.ConjugateGradient`` (Hestenes–Stiefel
β, pymanopt's adaptive backtracking line search, which rejects a step that does not lower f, so accepted iterates
never increase f). The Euclidean gradient is taken with respect to (u, s, vᵀ), as pymanopt's fixed-rank manifold
expects: with G = ∂f/∂X = −2 W ⊙ (A − X), ∂f/∂u = G v diag(s), ∂f/∂s = diag(uᵀ G v), ∂f/∂vᵀ = diag(s) uᵀ G,
computed by torch in float64 on the CPU (pymanopt's manifold works on numpy arrays).
The start (U, V) enters as the thin SVD of U Vᵀ (singular values floored at 1e-12 of the largest, so that it
lies on M_r); iterates are returned as balanced factors U = u diag(√s), V = v diag(√s).

pymanopt's own tests are switched off (its gradient-norm and step-size thresholds are absolute, so they depend on
the problem's scale); the base class's relative-decrease ``tol``, ``max_iter`` and ``time_limit`` apply, one
iteration being one pass of pymanopt's loop (``solvers.external``).

Cost per iteration: the line search's evaluations of f (O(mnr) each), one gradient (O(mnr)), and the manifold's
projection, retraction (QR of m×r and n×r, SVD of 2r×2r) and transport, O((m + n) r² + r³).
"""
from __future__ import annotations

import functools

import torch

from solvers.external import ExternalSolver, scale_free_units
from solvers.first_order import FirstOrderSolver

PIP = "pip install pymanopt==2.2.1"


@functools.lru_cache(maxsize=1)
def _missing() -> str | None:
    try:
        import pymanopt  # noqa: F401
    except ImportError:
        return f"solver 'pymanopt_rcg' needs pymanopt: {PIP} (or pip install 'wlrbench[manifold]')"
    return None


def _start_point(U: torch.Tensor, V: torch.Tensor):
    """(u, s, vᵀ) of U Vᵀ as float64 numpy arrays, from QRs of the factors: O((m + n) r²)."""
    qu, ru = torch.linalg.qr(U.double().cpu())
    qv, rv = torch.linalg.qr(V.double().cpu())
    p, s, qt = torch.linalg.svd(ru @ rv.T)
    s = s.clamp_min(1e-12 * float(s.max().clamp_min(1e-300)))
    return (qu @ p).numpy(), s.numpy(), (qt @ qv.T).numpy()


class PymanoptRCG(ExternalSolver):
    """Riemannian CG from pymanopt on the fixed-rank manifold; see the module docstring."""

    name = "pymanopt_rcg"
    family = "external"
    monotone = True
    default_max_iter = 20000

    @classmethod
    def flops(cls, m: int, n: int, r: int) -> float:  # one f evaluation and one gradient
        return FirstOrderSolver.flops(m, n, r)

    def refuse(self, problem) -> str | None:
        return _missing() or super().refuse(problem)

    def optimise(self, dp, U, V, report) -> str:
        import pymanopt
        from pymanopt.optimizers import ConjugateGradient

        (m, n), r = dp.shape, dp.rank
        unit, f0 = scale_free_units(dp)  # pymanopt sees X / unit² and f / f0 (see solvers.external)
        A, W = dp.A.double().cpu() / unit ** 2, dp.W.double().cpu() * (unit ** 4 / f0)
        manifold = pymanopt.manifolds.FixedRankEmbedded(m, n, r)

        def product(u, s, vt):
            return (torch.from_numpy(u) * torch.from_numpy(s)) @ torch.from_numpy(vt)

        @pymanopt.function.numpy(manifold)
        def cost(u, s, vt):
            R = A - product(u, s, vt)
            return float((W * R * R).sum())

        @pymanopt.function.numpy(manifold)
        def euclidean_gradient(u, s, vt):
            G = -2 * W * (A - product(u, s, vt))
            gv = G @ torch.from_numpy(vt).T  # G v
            ug = torch.from_numpy(u).T @ G  # uᵀ G
            s_ = torch.from_numpy(s)
            return (gv * s_).numpy(), torch.diagonal(ug @ torch.from_numpy(vt).T).numpy(), (s_[:, None] * ug).numpy()

        def factors(point):
            u, s, vt = (torch.from_numpy(x) for x in point)
            root = s.sqrt()
            return (u * root * unit).to(dp.device, dp.dtype), (vt.T * root * unit).to(dp.device, dp.dtype)

        class Driven(ConjugateGradient):
            def _add_log_entry(self, *, iteration, point, **_):  # pymanopt calls this once per iteration
                if iteration > 1:  # iteration 1 is the start
                    report(*factors(point))

        optimizer = Driven(max_time=float("inf"), max_iterations=2 ** 62, min_gradient_norm=0.0,
                           min_step_size=0.0, max_cost_evaluations=2 ** 62, verbosity=0)
        problem = pymanopt.Problem(manifold, cost, euclidean_gradient=euclidean_gradient)
        result = optimizer.run(problem, initial_point=_start_point(U / unit, V / unit))
        return f"pymanopt: {result.stopping_criterion}"
