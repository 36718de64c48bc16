"""The synthetic families: their f* is verified independently of the solvers' own code (numpy SVD)."""
import numpy as np
import pytest

from problems import synthetic


@pytest.mark.parametrize("family", list(synthetic.FAMILIES))
def test_families_are_seeded_and_valid(family):
    a, b = synthetic.make(family, seed=5), synthetic.make(family, seed=5)
    assert np.array_equal(a.A.numpy(), b.A.numpy()) and np.array_equal(a.W.numpy(), b.W.numpy())
    assert not np.array_equal(a.A.numpy(), synthetic.make(family, seed=6).A.numpy())
    assert a.meta["family"] == family
    assert (a.f_star is not None) == (family in synthetic.KNOWN_OPTIMUM)
    assert synthetic.make(family, dtype="float32").dtype.is_floating_point


def test_constant_f_star_is_eckart_young():
    p = synthetic.constant(m=25, n=15, rank=3, c=2.0)
    A = p.A.numpy()
    P, s, Qt = np.linalg.svd(A)
    X = (P[:, :3] * s[:3]) @ Qt[:3]
    assert p.f_star == pytest.approx(2.0 * ((A - X) ** 2).sum(), rel=1e-10)


def test_separable_f_star_beats_any_rank_r_matrix_we_try():
    p = synthetic.separable(m=25, n=15, rank=3)
    A, W = p.A.numpy(), p.W.numpy()
    a, b = W[:, 0] / W[0, 0], W[0]  # recover the factors: W = a bᵀ
    B = np.sqrt(a)[:, None] * A * np.sqrt(b)[None, :]
    P, s, Qt = np.linalg.svd(B)
    X = ((P[:, :3] * s[:3]) @ Qt[:3]) / np.sqrt(a)[:, None] / np.sqrt(b)[None, :]
    assert p.f_star == pytest.approx((W * (A - X) ** 2).sum(), rel=1e-9)
    P, s, Qt = np.linalg.svd(A)  # the unweighted SVD is worse
    assert (W * (A - (P[:, :3] * s[:3]) @ Qt[:3]) ** 2).sum() > p.f_star * (1 + 1e-6)


@pytest.mark.parametrize("family", ["planted", "completion"])
def test_planted_optimum_is_zero_and_reached_by_the_planted_matrix(family):
    p = synthetic.make(family, m=30, n=20, rank=3, seed=2)
    assert p.f_star == 0.0
    assert p.with_rank(2).f_star is None and p.with_rank(5).f_star == 0.0
    W = p.W.numpy()
    if family == "completion":
        assert set(np.unique(W)) == {0.0, 1.0} and (W.sum(1) >= 4).all() and (W.sum(0) >= 4).all()
        assert np.all(p.A.numpy()[W == 0] == 0)
    else:
        assert np.linalg.matrix_rank(p.A.numpy()) == 3 and W.min() > 0


def test_unknown_family_and_bad_options():
    with pytest.raises(ValueError, match="unknown synthetic family"):
        synthetic.make("nope")
    with pytest.raises(ValueError, match="tail"):
        synthetic.heavy_tailed(tail="cauchy")
    with pytest.raises(ValueError, match="observed"):
        synthetic.completion(observed=0)
