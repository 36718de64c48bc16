"""Confidence intervals for held-out metrics: the bootstrap over evaluation units (percentile method).

A held-out metric is a ratio of sums over the n evaluation units of ``problems.lm.loss``, θ = Σ_u s_u / Σ_u k_u
(s: summed loss or correct retrievals, k: loss terms). The bootstrap (Efron & Tibshirani 1993, ch. 13) draws
B resamples of the n units with replacement, each a vector of multiplicities c (Σ c = n), and recomputes
θ* = Σ c_u s_u / Σ c_u k_u; the level-(1 − α) interval is the α/2 and 1 − α/2 quantiles of the θ*.

Two models evaluated on the same units are compared *paired*: the same resamples give d* = θ_a* − θ_b*, so
the unit-to-unit variation they share (a hard block is hard for both) cancels, and a difference far smaller
than either interval's width can be significant. The difference is significant at level α when its interval
excludes 0; the two-sided p-value is p = min(1, 2·min(#{d* ≤ 0} + 1, #{d* ≥ 0} + 1)/(B + 1)). ``holm``
adjusts a family of p-values (Holm 1979), controlling the chance of any false "significant" at α.

Resamples are drawn from a seeded generator that depends only on (n, B, seed): every model evaluated on the
same units gets the same resamples. Cost O(B·n) per metric.
"""
from __future__ import annotations

import numpy as np

LEVEL = 0.95
RESAMPLES = 10000


def multiplicities(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) counts: how often each of the n units appears in each resample."""
    if n < 1:
        raise ValueError("a bootstrap needs at least one evaluation unit")
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], idx), 1.0)
    return counts


def _replicates(counts: np.ndarray, sums, terms) -> np.ndarray:
    return counts @ np.asarray(sums, float) / (counts @ np.asarray(terms, float))


def _quantiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def interval(sums, terms, *, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """(θ, low, high): the ratio Σ sums / Σ terms over the units and its bootstrap interval."""
    sums, terms = np.asarray(sums, float), np.asarray(terms, float)
    if sums.shape != terms.shape or sums.ndim != 1:
        raise ValueError(f"sums and terms must be 1-D of one length, got {sums.shape} and {terms.shape}")
    counts = multiplicities(len(sums), resamples, seed)
    return (float(sums.sum() / terms.sum()), *_quantiles(_replicates(counts, sums, terms), level))


def paired(sums_a, sums_b, terms, *, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Paired comparison of two models on the same units: difference θ_a − θ_b, its interval, the p-value."""
    sums_a, sums_b, terms = (np.asarray(x, float) for x in (sums_a, sums_b, terms))
    if not sums_a.shape == sums_b.shape == terms.shape:
        raise ValueError("a paired comparison needs both models evaluated on the same units")
    counts = multiplicities(len(terms), resamples, seed)
    diffs = _replicates(counts, sums_a, terms) - _replicates(counts, sums_b, terms)
    low, high = _quantiles(diffs, level)
    tail = min((diffs <= 0).sum(), (diffs >= 0).sum()) + 1
    return {"difference": float((sums_a.sum() - sums_b.sum()) / terms.sum()), "low": low, "high": high,
            "p_value": float(min(1.0, 2 * tail / (resamples + 1)))}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: reject H_i at α exactly when its adjusted p ≤ α."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted
