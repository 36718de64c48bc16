"""Synthetic WLRA families, several with a known optimum f*.

Every family is a function ``family(m, n, rank, seed=0, dtype="float64", **options) -> Problem``;
``FAMILIES`` maps their names to them and ``make(name, **kwargs)`` builds one by name. Each problem's
``meta`` records ``family`` and its arguments, and ``meta["f_star_by_rank"]`` tabulates f* for every rank
where theory gives it, so ``Problem.with_rank`` keeps f*.

| family          | W                                   | f*                                       |
|-----------------|-------------------------------------|------------------------------------------|
| constant        | c (constant)                        | c Σ_{k>r} σ_k(A)²   (Eckart–Young)       |
| separable       | a bᵀ, a, b log-normal               | Σ_{k>r} σ_k(D_a^½ A D_b^½)²              |
| planted         | log-normal, heavy-tailed, positive  | 0 for r ≥ true_rank (A has rank true_rank)|
| completion      | binary mask, ``observed`` fraction  | 0 for r ≥ true_rank (planted A)          |
| heavy_tailed    | Fisher-like: row·col·log-normal     | unknown                                  |
| ill_conditioned | log-normal; A with σ₁/σ_min = cond   | unknown                                  |

``with_inputs(problem, seed)`` attaches seeded synthetic calibration statistics (``problems.inputs``) to any of
them, for the activation-aware solvers (``asvd``, ``svd_llm``) and their tests.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from problems.inputs import InputStatistics
from problems.problem import Problem


def _spectrum_matrix(rng, m: int, n: int, s: np.ndarray) -> np.ndarray:
    """P diag(s) Qᵀ with Haar-random orthonormal P (m×k), Q (n×k), k = len(s)."""
    k = len(s)
    P, _ = np.linalg.qr(rng.standard_normal((m, k)))
    Q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return (P * s) @ Q.T


def _gapped_spectrum(m: int, n: int, rank: int) -> np.ndarray:
    """r leading singular values in [1, 2], then a tail decaying from 0.3: a clear gap at the target rank,
    so the optimum is unique and well separated."""
    k = min(m, n)
    return np.concatenate([np.linspace(2.0, 1.0, rank), 0.3 * 0.95 ** np.arange(k - rank)])


def _tail_energy(singular_values: np.ndarray) -> list[float]:
    """Entry k: Σ_{i>k} σ_i², the Eckart–Young error at rank k (k = 0 … min(m, n))."""
    sq = np.asarray(singular_values, dtype=np.float64) ** 2
    return [float(sq[k:].sum()) for k in range(len(sq) + 1)]


def _problem(family: str, A, W, rank: int, f_star_by_rank, dtype: str, **args) -> Problem:
    table = list(f_star_by_rank) if f_star_by_rank is not None else None
    m, n = A.shape
    return Problem(A.astype(dtype), W.astype(dtype), rank,
                   name=f"{family}-{m}x{n}-r{rank}-s{args['seed']}",
                   f_star=None if table is None else table[rank],
                   meta={"family": family, "args": {"m": m, "n": n, "rank": rank, "dtype": dtype, **args},
                         "f_star_by_rank": table})


def constant(m: int = 40, n: int = 30, rank: int = 4, seed: int = 0, dtype: str = "float64", c: float = 1.0):
    """W ≡ c: the truncated SVD is optimal, f* = c Σ_{k>r} σ_k(A)²."""
    rng = np.random.default_rng(seed)
    A = _spectrum_matrix(rng, m, n, _gapped_spectrum(m, n, rank))
    table = [c * e for e in _tail_energy(np.linalg.svd(A, compute_uv=False))]
    return _problem("constant", A, np.full((m, n), float(c)), rank, table, dtype, seed=seed, c=c)


def separable(m: int = 40, n: int = 30, rank: int = 4, seed: int = 0, dtype: str = "float64",
              sigma: float = 1.0):
    """W = a bᵀ with log-normal a, b (spread ``sigma``): optimum from the SVD of D_a^½ A D_b^½."""
    rng = np.random.default_rng(seed)
    A = _spectrum_matrix(rng, m, n, _gapped_spectrum(m, n, rank))
    a, b = np.exp(sigma * rng.standard_normal(m)), np.exp(sigma * rng.standard_normal(n))
    B = np.sqrt(a)[:, None] * A * np.sqrt(b)[None, :]
    table = _tail_energy(np.linalg.svd(B, compute_uv=False))
    return _problem("separable", A, np.outer(a, b), rank, table, dtype, seed=seed, sigma=sigma)


def _planted_table(m: int, n: int, true_rank: int) -> list:
    return [None if k < true_rank else 0.0 for k in range(min(m, n) + 1)]


def planted(m: int = 40, n: int = 30, rank: int = 4, seed: int = 0, dtype: str = "float64",
            true_rank: int | None = None, sigma: float = 1.5):
    """A of exact rank ``true_rank`` (default: rank) and heavy-tailed positive W = exp(σ·N(0,1)): f* = 0."""
    rng = np.random.default_rng(seed)
    k = rank if true_rank is None else true_rank
    A = rng.standard_normal((m, k)) @ rng.standard_normal((k, n)) / np.sqrt(k)
    W = np.exp(sigma * rng.standard_normal((m, n)))
    return _problem("planted", A, W, rank, _planted_table(m, n, k), dtype, seed=seed, true_rank=k, sigma=sigma)


def completion(m: int = 40, n: int = 30, rank: int = 4, seed: int = 0, dtype: str = "float64",
               true_rank: int | None = None, observed: float = 0.6):
    """Matrix completion: binary W observing a fraction ``observed`` of a planted rank-``true_rank`` matrix;
    A holds the planted values where observed and zeros elsewhere (so A itself is not low rank).

    Every row and column keeps at least ``true_rank`` + 1 observed entries so the planted matrix is
    identifiable in the generic case; f* = 0.
    """
    if not 0 < observed <= 1:
        raise ValueError(f"observed must be in (0, 1], got {observed}")
    rng = np.random.default_rng(seed)
    k = rank if true_rank is None else true_rank
    A = rng.standard_normal((m, k)) @ rng.standard_normal((k, n)) / np.sqrt(k)
    W = (rng.random((m, n)) < observed).astype(float)
    need = min(k + 1, m, n)
    for i in range(m):
        W[i, rng.choice(n, need, replace=False)] = 1.0
    for j in range(n):
        W[rng.choice(m, need, replace=False), j] = 1.0
    A = A * W  # unobserved entries are unknown: the data holds zeros there, as a real completion input would
    return _problem("completion", A, W, rank, _planted_table(m, n, k), dtype, seed=seed, true_rank=k,
                    observed=observed)


def heavy_tailed(m: int = 60, n: int = 48, rank: int = 4, seed: int = 0, dtype: str = "float64",
                 tail: str = "lognormal", sigma: float = 2.0, alpha: float = 1.5):
    """Fisher-like importance: W_ij = r_i c_j e_ij with log-normal row/column factors and an element-wise
    heavy tail e (log-normal with spread ``sigma``, or Pareto with index ``alpha``); A with a slowly
    decaying spectrum like a trained weight matrix. f* unknown."""
    rng = np.random.default_rng(seed)
    k = min(m, n)
    A = _spectrum_matrix(rng, m, n, 1.0 / np.sqrt(1.0 + np.arange(k)))
    if tail == "lognormal":
        e = np.exp(sigma * rng.standard_normal((m, n)))
    elif tail == "pareto":
        e = (1.0 - rng.random((m, n))) ** (-1.0 / alpha)
    else:
        raise ValueError(f"tail must be 'lognormal' or 'pareto', got {tail!r}")
    W = np.exp(0.5 * rng.standard_normal(m))[:, None] * np.exp(0.5 * rng.standard_normal(n))[None, :] * e
    return _problem("heavy_tailed", A, W, rank, None, dtype, seed=seed, tail=tail, sigma=sigma, alpha=alpha)


def ill_conditioned(m: int = 40, n: int = 30, rank: int = 4, seed: int = 0, dtype: str = "float64",
                    cond: float = 1e6, sigma: float = 1.0):
    """A with geometrically decaying singular values from 1 to 1/cond, log-normal W. f* unknown."""
    rng = np.random.default_rng(seed)
    A = _spectrum_matrix(rng, m, n, np.geomspace(1.0, 1.0 / cond, min(m, n)))
    W = np.exp(sigma * rng.standard_normal((m, n)))
    return _problem("ill_conditioned", A, W, rank, None, dtype, seed=seed, cond=cond, sigma=sigma)


def input_statistics(n: int, seed: int = 0, tokens: int | None = None, sigma: float = 1.0) -> InputStatistics:
    """Seeded statistics of T = ``tokens`` (default 4n) synthetic layer inputs x_t = diag(c) Q diag(√λ) z_t,
    z_t ~ N(0, I_n): log-normal channel scales c (spread ``sigma``: a few outlier channels, as in LLM
    activations), a Haar-random rotation Q and a decaying spectrum λ_k = 1/(1 + k) (correlated features).
    C = X Xᵀ/T is positive definite for T ≥ n and singular (rank T) for T < n."""
    rng = np.random.default_rng(seed)
    T = 4 * n if tokens is None else int(tokens)
    if T < 1:
        raise ValueError(f"tokens must be positive, got {tokens}")
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    mix = np.exp(sigma * rng.standard_normal(n))[:, None] * Q * np.sqrt(1.0 / (1.0 + np.arange(n)))[None, :]
    X = mix @ rng.standard_normal((n, T))
    return InputStatistics(X @ X.T / T, np.abs(X).mean(axis=1), T)


def with_inputs(problem: Problem, seed: int = 0, tokens: int | None = None, sigma: float = 1.0) -> Problem:
    """``problem`` with ``input_statistics(n, seed, tokens, sigma)`` attached (n = A's columns) and recorded in
    ``meta["inputs"]``; A, W, rank and f* are unchanged (f* is the weighted objective's optimum)."""
    stats = input_statistics(problem.shape[1], seed, tokens, sigma)
    meta = {**problem.meta, "inputs": {"synthetic": True, "seed": seed, "tokens": stats.tokens, "sigma": sigma}}
    return dataclasses.replace(problem, inputs=stats, meta=meta)


FAMILIES = {f.__name__: f for f in (constant, separable, planted, completion, heavy_tailed, ill_conditioned)}
KNOWN_OPTIMUM = ("constant", "separable", "planted", "completion")


def make(family: str, **kwargs) -> Problem:
    """Build a problem of the named family (see ``FAMILIES``)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown synthetic family {family!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[family](**kwargs)
