"""Every registered solver × every conformance check (solvers.testing)."""
import pytest
import torch

import solvers
from solvers.testing import CHECKS, check_cuda


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
@pytest.mark.parametrize("name", solvers.available())
def test_conformance(name, check):
    if check is check_cuda and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    check(name)
