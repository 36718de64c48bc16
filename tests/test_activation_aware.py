"""asvd and svd_llm against their closed forms, computed here independently with numpy (float64)."""
import dataclasses

import numpy as np
import pytest
import torch

import solvers
from problems import InputStatistics, synthetic
from solvers.svd_llm import whitening_factor


def _with_gram(problem, C, mu=None):
    mu = np.sqrt(np.clip(np.diag(C), 0, None)) if mu is None else mu
    return dataclasses.replace(problem, inputs=InputStatistics(np.asarray(C, float), np.asarray(mu, float), 100))


def _product(res):
    return (res.U @ res.V.T).numpy()


def _truncate(B, r):
    P, s, Qt = np.linalg.svd(B, full_matrices=False)
    return (P[:, :r] * s[:r]) @ Qt[:r], s


def _base(seed=0):
    return synthetic.constant(m=30, n=20, rank=4, seed=seed)  # a gapped spectrum: the optimum is unique


def test_svd_llm_with_identity_gram_is_the_svd():
    p = _with_gram(_base(), np.eye(20))
    np.testing.assert_allclose(_product(solvers.get("svd_llm").solve(p)), _product(solvers.get("svd").solve(p)),
                               atol=1e-12)


def test_svd_llm_with_diagonal_gram_is_a_column_scaled_svd():
    p = _base()
    d = np.exp(np.random.default_rng(1).standard_normal(20))
    want = _truncate(p.A.numpy() * np.sqrt(d), 4)[0] / np.sqrt(d)
    res = solvers.get("svd_llm").solve(_with_gram(p, np.diag(d)))
    np.testing.assert_allclose(_product(res), want, atol=1e-11)
    assert res.info["whitening"] == "cholesky"


def _activation_optimum(problem):
    """min over rank r of tr(R C Rᵀ)/tr(A C Aᵀ) = Σ_{i>r} σ_i(A G)² / ‖A G‖², G G ᵀ = C (numpy eigen-root)."""
    lam, E = np.linalg.eigh(problem.inputs.gram.numpy())
    s = np.linalg.svd(problem.A.numpy() @ (E * np.sqrt(np.clip(lam, 0, None))), compute_uv=False)
    return float((s[problem.rank:] ** 2).sum() / (s ** 2).sum())


def test_svd_llm_minimises_the_activation_objective():
    p = synthetic.with_inputs(synthetic.heavy_tailed(m=40, n=30, rank=5), seed=2)
    best = solvers.get("svd_llm").solve(p)
    opt = _activation_optimum(p)
    assert p.activation_error(best.U, best.V) == pytest.approx(opt, rel=1e-10)
    others = {name: solvers.get(name).solve(p) for name in ("svd", "asvd", "fwsvd_row", "separable")}
    others["als"] = solvers.get("als").solve(p, max_iter=20)
    for name, res in others.items():
        assert p.activation_error(res.U, res.V) > opt * (1 + 1e-6), name
    g = torch.Generator().manual_seed(0)
    for _ in range(5):  # no nearby rank-r factorisation does better
        U = best.U + 1e-3 * torch.randn(best.U.shape, generator=g, dtype=torch.float64)
        V = best.V + 1e-3 * torch.randn(best.V.shape, generator=g, dtype=torch.float64)
        assert p.activation_error(U, V) > opt


def test_svd_llm_with_a_singular_gram_falls_back_and_stays_optimal():
    p = _base()
    stats = synthetic.input_statistics(20, seed=3, tokens=200)
    C = stats.gram.numpy().copy()
    C[:, 7] = C[7, :] = 0.0  # a dead input channel: C is singular, its Cholesky factorisation fails
    q = _with_gram(p, C)
    res = solvers.get("svd_llm").solve(q)
    assert res.info["whitening"] == "eigh"
    assert torch.isfinite(res.U).all() and torch.isfinite(res.V).all()
    assert q.activation_error(res.U, res.V) == pytest.approx(_activation_optimum(q), rel=1e-9, abs=1e-14)
    low = _with_gram(p, synthetic.input_statistics(20, seed=3, tokens=6).gram.numpy())  # rank 6 < n = 20
    res = solvers.get("svd_llm").solve(low)
    assert low.activation_error(res.U, res.V) == pytest.approx(_activation_optimum(low), rel=1e-8, abs=1e-13)


def test_whitening_factor_reproduces_the_gram():
    pd = synthetic.input_statistics(12, seed=0).gram
    L, how = whitening_factor(pd)
    assert how == "cholesky" and torch.allclose(L @ L.T, pd, atol=1e-12)
    singular = synthetic.input_statistics(12, seed=0, tokens=5).gram.clone()
    singular[0] = singular[:, 0] = 0
    G, how = whitening_factor(singular)
    assert how == "eigh" and torch.allclose(G @ G.T, singular, atol=1e-12 * float(singular.abs().max()))


def test_asvd_is_the_svd_of_the_channel_scaled_weight():
    p = synthetic.with_inputs(_base(), seed=4)
    mu = p.inputs.abs_mean.numpy()
    for alpha in (0.5, 1.0):
        S = mu ** alpha
        want = _truncate(p.A.numpy() * S, 4)[0] / S
        np.testing.assert_allclose(_product(solvers.get("asvd", alpha=alpha).solve(p)), want, atol=1e-11)


def test_asvd_with_alpha_zero_is_the_svd():
    p = synthetic.with_inputs(synthetic.heavy_tailed(m=30, n=20, rank=4), seed=4)
    np.testing.assert_allclose(_product(solvers.get("asvd", alpha=0).solve(p)), _product(solvers.get("svd").solve(p)),
                               atol=1e-12)
    assert solvers.get("asvd").params["alpha"] == 0.5  # the paper's default
    with pytest.raises(ValueError, match="alpha"):
        solvers.get("asvd", alpha=-1)


def test_asvd_drops_inputs_that_never_fire():
    p = _base()
    mu = np.ones(20)
    mu[3] = 0.0
    res = solvers.get("asvd").solve(_with_gram(p, np.eye(20), mu))
    assert np.all(_product(res)[:, 3] == 0) and torch.isfinite(res.U).all()


@pytest.mark.parametrize("name", ["asvd", "svd_llm"])
def test_activation_aware_solvers_refuse_a_problem_without_inputs(name):
    bare = synthetic.constant(m=8, n=6, rank=2)
    with pytest.raises(ValueError, match=rf"^solver '{name}' needs the calibration statistics of the layer's input"):
        solvers.get(name).solve(bare)
    assert "problems.synthetic.with_inputs" in solvers.get(name).refuse(bare)
