"""The budget arguments of a solve, checked once, in one place: by ``Solver.solve`` and by the runner's plan
(so a bad grid fails before any run starts, with the message a direct solve would give).

    max_iter     None (the solver's default) or an integer in [0, 2^63 − 1]
    tol          None (the solver's default) or a finite real ≥ 0 (relative decrease counted as converged)
    time_limit   None or a real > 0 in solver seconds; inf means no limit (returned as None)
    seed         an integer in [0, 2^63 − 1]

The integer bounds are those of the results store's int64 columns (and torch's generator seeds), so a run
never fails after it ran, when its row is written.
"""
from __future__ import annotations

import math

from solvers.params import Int, Real

INT64_MAX = 2 ** 63 - 1
MAX_ITER = Int(None, ge=0, le=INT64_MAX, none=True)
TOL = Real(None, ge=0, none=True)
TIME_LIMIT = Real(None, gt=0, allow_inf=True, none=True)
SEED = Int(0, ge=0, le=INT64_MAX)


def check_budget(*, max_iter=None, tol=None, time_limit=None, seed=0) -> dict:
    """The validated budget as a dict (``time_limit`` inf → None); TypeError/ValueError naming the argument."""
    limit = TIME_LIMIT.validate(time_limit, "time_limit")
    return {"max_iter": MAX_ITER.validate(max_iter, "max_iter"), "tol": TOL.validate(tol, "tol"),
            "time_limit": None if limit is None or math.isinf(limit) else limit,
            "seed": SEED.validate(seed, "seed")}
