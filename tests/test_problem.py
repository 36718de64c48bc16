import numpy as np
import pytest
import torch

from problems import Problem, rank_for_param_ratio


def _ok(m=6, n=5):
    rng = np.random.default_rng(0)
    return rng.standard_normal((m, n)), rng.random((m, n)) + 0.1


def test_accepts_numpy_and_torch_and_validates_types():
    A, W = _ok()
    p = Problem(A, W, 2)
    q = Problem(torch.tensor(A), torch.tensor(W), 2)
    assert p.shape == q.shape == (6, 5) and p.dtype == torch.float64
    assert Problem(A.astype(np.float32), W, 2).dtype == torch.float32
    assert Problem(A.astype(int), (W > 0.5), 2).dtype == torch.float64  # ints and a boolean mask convert


@pytest.mark.parametrize("mutate, exc, words", [
    (lambda A, W: (np.where(np.eye(6, 5) > 0, np.nan, A), W, 2), ValueError, "NaN/Inf"),
    (lambda A, W: (A, np.where(np.eye(6, 5) > 0, np.inf, W), 2), ValueError, "NaN/Inf"),
    (lambda A, W: (A, -W, 2), ValueError, "non-negative"),
    (lambda A, W: (A, 0 * W, 2), ValueError, "all zero"),
    (lambda A, W: (A, W[:, :4], 2), ValueError, "shape mismatch"),
    (lambda A, W: (A, W, 0), ValueError, "out of range"),
    (lambda A, W: (A, W, 6), ValueError, "out of range"),
    (lambda A, W: (A, W, 2.5), TypeError, "integer"),
    (lambda A, W: (A[None], W[None], 2), ValueError, "2-D"),
    (lambda A, W: (A.astype(str), W, 2), TypeError, "numeric"),
    (lambda A, W: (A.astype(complex), W, 2), TypeError, "real"),
    (lambda A, W: (np.zeros((0, 5)), np.zeros((0, 5)), 1), ValueError, "empty"),
])
def test_bad_input_names_the_problem(mutate, exc, words):
    with pytest.raises(exc, match=words):
        Problem(*mutate(*_ok()))


def test_bad_f_star():
    with pytest.raises(ValueError, match="f_star"):
        Problem(*_ok(), 2, f_star=-1.0)


def test_objective_rel_error_and_param_ratio():
    A, W = _ok()
    p = Problem(A, W, 2)
    U, V = np.ones((6, 2)), np.ones((5, 2))
    expected = float((W * (A - U @ V.T) ** 2).sum())
    assert p.objective(U, V) == pytest.approx(expected, rel=1e-14)
    assert p.rel_error(U, V) == pytest.approx(expected / float((W * A**2).sum()), rel=1e-14)
    assert p.objective(np.zeros((6, 2)), np.zeros((5, 2))) == pytest.approx(p.weighted_norm)
    assert p.param_ratio == pytest.approx(2 * 11 / 30)
    with pytest.raises(ValueError, match="factors"):
        p.objective(np.ones((5, 2)), np.ones((5, 2)))


def test_rank_for_param_ratio():
    assert rank_for_param_ratio(576, 576, 0.5) == 144
    assert rank_for_param_ratio(1536, 576, 0.5) == 209
    assert rank_for_param_ratio(10, 10, 1e-6) == 1
    with pytest.raises(ValueError):
        rank_for_param_ratio(10, 10, 0)


def test_with_rank_keeps_known_f_star():
    from problems import synthetic

    p = synthetic.constant(m=20, n=10, rank=3)
    q = p.with_rank(5)
    assert q.rank == 5 and q.f_star == pytest.approx(p.meta["f_star_by_rank"][5])
    assert Problem(*_ok(), 2).with_rank(3).f_star is None
