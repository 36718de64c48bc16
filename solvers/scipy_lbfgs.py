"""scipy's L-BFGS-B on the factored objective: the general-purpose quasi-Newton method a user reaches for first.

Minimises f(U, V) = Σ W ⊙ (A − U Vᵀ)² over x = (vec U, vec V) ∈ R^{(m+n)r} with ``scipy.optimize.minimize(
method="L-BFGS-B")`` (no bounds), given f and the analytic gradient ∇_U f = −2 (W⊙R) V, ∇_V f = −2 (W⊙R)ᵀ U
(``solvers.objective.value_and_grad``, computed by torch on the solve's device and dtype and handed to scipy as
float64 arrays), in the scale-free units of ``solvers.external``. L-BFGS keeps the last ``memory`` pairs of steps and gradient changes; its line search
(Moré–Thuente) enforces sufficient decrease, so accepted iterates never increase f.

scipy's own tests are switched off (``ftol = gtol = 0``: its gtol is an absolute gradient size, which depends on
the problem's scale); the base class's relative-decrease ``tol``, ``max_iter`` and ``time_limit`` apply, one
iteration being one scipy callback (``solvers.external``). The run ends with "converged" when scipy stops by
itself (its line search can make no more progress), with scipy's message.

Cost per iteration: one or a few evaluations of f and its gradient (O(mnr) each, the line search's trials),
plus O(memory · (m + n) r) for the two-loop recursion.
"""
from __future__ import annotations

import numpy as np
import torch

from solvers.external import ExternalSolver, scale_free_units
from solvers.first_order import FirstOrderSolver
from solvers.objective import value_and_grad
from solvers.params import Int


class ScipyLBFGS(ExternalSolver):
    """L-BFGS-B from scipy.optimize on (U, V); see the module docstring."""

    name = "scipy_lbfgs"
    family = "external"
    parameters = {"memory": Int(10, ge=1, doc="L-BFGS memory: correction pairs kept (scipy's maxcor)")}
    monotone = True
    default_max_iter = 20000

    @classmethod
    def flops(cls, m: int, n: int, r: int) -> float:  # one evaluation of f and its gradient
        return FirstOrderSolver.flops(m, n, r)

    def optimise(self, dp, U, V, report) -> str:
        from scipy.optimize import minimize

        (m, r), n = U.shape, V.shape[0]
        s, f0 = scale_free_units(dp)  # scipy sees x = (U, V)/s and f/f0 (see solvers.external)

        def unpack(x: np.ndarray):
            t = torch.from_numpy(x).to(dp.device, dp.dtype) * s
            return t[:m * r].reshape(m, r), t[m * r:].reshape(n, r)

        def fun(x):
            f, gu, gv = value_and_grad(dp.A, dp.W, *unpack(x))
            return float(f) / f0, (torch.cat([gu.reshape(-1), gv.reshape(-1)]).double() * (s / f0)).cpu().numpy()

        x0 = (torch.cat([U.reshape(-1), V.reshape(-1)]).double() / s).cpu().numpy()
        res = minimize(fun, x0, jac=True, method="L-BFGS-B",
                       callback=lambda intermediate_result: report(*unpack(intermediate_result.x.copy())),
                       options={"maxiter": np.iinfo(np.int32).max, "maxfun": np.iinfo(np.int32).max,
                                "ftol": 0.0, "gtol": 0.0, "maxcor": self.params["memory"]})
        return f"scipy L-BFGS-B: {res.message}"
