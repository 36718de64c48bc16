"""Every registered solver × every conformance check (solvers.testing); ``-m cuda`` selects the CUDA ones."""
import pytest
import torch

import solvers
from solvers.testing import CHECKS, check_cuda, problem_for

_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
_CASES = [pytest.param(check, marks=_CUDA if check is check_cuda else (), id=check.__name__) for check in CHECKS]


@pytest.mark.parametrize("check", _CASES)
@pytest.mark.parametrize("name", solvers.available())
def test_conformance(name, check):
    reason = solvers.get(name).refuse(problem_for(name))
    if reason:  # e.g. an optional dependency that is not installed: the solver says so in one line
        pytest.skip(reason)
    check(name)
