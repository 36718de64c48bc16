"""Will plain SVD hurt? A statistic of the importance W alone, computed before solving anything.

SVD minimises the unweighted error Σ (A − UVᵀ)²; it coincides with the weighted optimum when W is constant
and can only lose to a weighted solver when W varies. TFWSVD (Hua et al. 2022, "Numerical optimizations for
weighted low-rank estimation on language model") proposes the spread of the normalised Fisher information as a
predictor of SVD's damage. We implement that idea as the squared coefficient of variation (the variance after
normalising to mean 1) of an importance profile:

    variant "row"      (default): a_i = Σ_j W_ij (FWSVD's row importance);   svd_risk = Var(a / mean a)
    variant "column":             b_j = Σ_i W_ij;                            svd_risk = Var(b / mean b)
    variant "element":            every W_ij;                                svd_risk = Var(W / mean W)
    variant "log_element":        std of log10 W_ij over the entries with W_ij > 0 (robust to heavy tails)

All four are 0 for a constant W, invariant to rescaling W (so to the Fisher's arbitrary scale) and cost O(mn).
The paper's exact normalisation is paraphrased, not copied: we could not consult the text offline, so the
variants are reported side by side and ``wlrbench svd-risk`` measures which one predicts SVD's penalty
(Spearman rank correlation, which only depends on the ordering of matrices, not on the scale of the statistic;
``spearman`` gives it with a p-value that is exact for few matrices).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

VARIANTS = ("row", "column", "element", "log_element")


def _cv2(x: torch.Tensor) -> float:
    x = x.double().flatten()
    return float((x / x.mean()).var(unbiased=False))


def svd_risk(problem, variant: str = "row") -> float:
    """The Fisher-variance statistic of ``problem.W`` (see the module docstring); larger = SVD riskier."""
    W = problem.W
    if variant == "row":
        return _cv2(W.sum(1))
    if variant == "column":
        return _cv2(W.sum(0))
    if variant == "element":
        return _cv2(W)
    if variant == "log_element":
        return float(torch.log10(W[W > 0].double()).std(unbiased=False))
    raise ValueError(f"unknown svd_risk variant {variant!r}; choose from {', '.join(VARIANTS)}")


def all_variants(problem) -> dict:
    """{"svd_risk_<variant>": value} for every variant."""
    return {f"svd_risk_{v}": svd_risk(problem, v) for v in VARIANTS}


EXACT_MAX_N = 8  # up to this many pairs the p-value enumerates every permutation (8! = 40320)


def spearman(x, y) -> tuple[float, float, int]:
    """(rho, two-sided p-value, n) of the Spearman rank correlation over the pairs where both are finite; NaN for
    fewer than 3 pairs or a constant side. The p-value is scipy's t approximation, except for n ≤ EXACT_MAX_N,
    where it is exact: the fraction of the n! orderings of y whose |rho| reaches the observed one (the t
    approximation says p = 0 for a perfect correlation of 3 points, whose exact p is 1/3)."""
    from scipy.stats import rankdata, spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan, math.nan, n
    res = spearmanr(x[ok], y[ok])
    rho, p = float(res.statistic), float(res.pvalue)
    if n <= EXACT_MAX_N:
        rx, ry = rankdata(x[ok]) - (n + 1) / 2, rankdata(y[ok]) - (n + 1) / 2
        perms = ry[np.array(list(itertools.permutations(range(n))))]
        rhos = perms @ rx / math.sqrt((rx @ rx) * (ry @ ry))
        p = float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))
    return rho, p, n
