"""The ``quick`` suite behind ``wlrbench quickstart``: small problems that every solver finishes in about a
second, four synthetic families with a known optimum f* (so the report measures true suboptimality), carrying
seeded input statistics (``synthetic.with_inputs``) so the activation-aware solvers run on them too, and,
when the SmolLM2 sample is already cached (``problems.lm.suite_is_cached``), its two smallest real matrices
at rank ``LM_RANK`` (at the suite's own ρ = 0.5, rank 144, one second ends the iterative solvers during their
start-up, so they would only echo their initial point).
"""
from __future__ import annotations

import importlib.util

from problems import synthetic
from problems.suites import build_suite, suite

QUICK_FAMILIES = ("constant", "separable", "planted", "completion")
LM_SUITE = "smollm2-sample"
LM_MATRICES = 2
LM_RANK = 16


def lm_problems() -> list:
    """The ``LM_MATRICES`` smallest matrices of the SmolLM2 sample at rank ``LM_RANK`` when the suite builds
    from cache, else none (never computes Fisher: that takes minutes)."""
    if importlib.util.find_spec("problems.lm") is None:
        return []
    from problems.lm import suite_is_cached

    if not suite_is_cached(LM_SUITE):
        return []
    smallest = sorted(build_suite(LM_SUITE), key=lambda p: (p.shape[0] * p.shape[1], p.name))[:LM_MATRICES]
    return [p.with_rank(min(LM_RANK, *p.shape)) for p in smallest]


@suite("quick", "4 small synthetic families with known f* (60×40, rank 4), plus 2 cached SmolLM2 matrices "
                "at rank 16 when available: the quickstart's problems")
def quick():
    return [synthetic.with_inputs(synthetic.make(name, m=60, n=40, rank=4)) for name in QUICK_FAMILIES] + lm_problems()
