"""The conformance checks themselves must fail on broken solvers (a check that cannot fail checks nothing)."""
import pytest
import torch

from solvers import registry
from solvers.base import ClosedFormSolver, IterativeSolver
from solvers.linalg import balanced_factors, truncated_svd
from solvers.testing import check_exact_optimum, check_max_iter, check_monotone, check_result_contract


@pytest.fixture
def register():
    names = []

    def _register(cls):
        names.append(cls.name)
        return cls.name

    yield _register
    for n in names:
        registry._REGISTRY.pop(n, None)


def test_false_exactness_claim_is_caught(register):
    class ClaimsTooMuch(ClosedFormSolver):
        name = "_t_claims_too_much"
        exact_on = frozenset({"separable"})

        def fit(self, dp):
            return balanced_factors(*truncated_svd(dp.A, dp.rank))

    with pytest.raises(AssertionError, match="relative gap"):
        check_exact_optimum(register(ClaimsTooMuch))


class _Wobble(IterativeSolver):
    """Alternately shrinks and grows U: not monotone."""

    monotone = True

    def start(self, dp, U, V):
        return {"U": U, "V": V, "k": 0}

    def factors(self, s):
        return s["U"], s["V"]

    def step(self, dp, s):
        return {"U": s["U"] * (0.5 if s["k"] % 2 else 1.5), "V": s["V"], "k": s["k"] + 1}


def test_false_monotone_claim_is_caught(register):
    cls = type("Wobble", (_Wobble,), {"name": "_t_wobble"})
    with pytest.raises(AssertionError, match="objective increased"):
        check_monotone(register(cls))


def test_wrong_objective_and_ignored_max_iter_are_caught(register):
    class Lies(ClosedFormSolver):
        name = "_t_lies"

        def fit(self, dp):
            return torch.full((dp.shape[0], dp.rank), float("nan"), dtype=dp.dtype), torch.zeros(dp.shape[1], dp.rank, dtype=dp.dtype)

    with pytest.raises(AssertionError):
        check_result_contract(register(Lies))

    class Runaway(_Wobble):
        name = "_t_runaway"
        monotone = False

        def _run(self, dp, clock, **kw):  # ignores max_iter entirely
            U, V, it, stop, trace, info = super()._run(dp, clock, **{**kw, "max_iter": 6})
            return U, V, it, "max_iter", trace, info

    with pytest.raises(AssertionError):
        check_max_iter(register(Runaway))
