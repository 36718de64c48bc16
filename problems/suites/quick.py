"""The ``quick`` suite behind ``wlrbench quickstart``: small problems on which the solvers differ.

No problem here is solved by the default start (the best closed-form baseline), so time to target measures
the iterative solvers rather than their start:
- four synthetic problems at 120×80, rank 8: ``heavy_tailed`` with log-normal and with Pareto weights
  (Fisher-like importance; f* unknown, and the log-normal one has local minima that the solvers reach
  differently), ``completion`` (a binary mask, f* = 0) and ``ill_conditioned`` (σ₁/σ_min = 1e6), each carrying
  seeded input statistics (``synthetic.with_inputs``) so the activation-aware solvers run on them too;
- ``LM_MATRICES``, real SmolLM2-135M weights of the last block (``LM_LAYER``) with their empirical Fisher
  on ``LM_TOKENS`` tokens of ``lee_background`` at the LM suites' parameter ratio ρ = 0.5. The last block
  keeps the Fisher's backward pass short; when that Fisher is not cached it is computed here (about a
  minute on an idle 2-core CPU, model load included) and cached for the next call. The finished problems are
  cached too (``<cache>/quick/``, ``problems.save`` files), so a later call loads two small files instead of
  the model. Without the LM packages the suite has only the synthetic problems, and ``lm_unavailable()`` says
  why.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from problems import synthetic
from problems.suites import suite

SIZE = dict(m=120, n=80, rank=8)
SYNTHETIC = (("heavy_tailed", {}), ("heavy_tailed", {"tail": "pareto"}), ("completion", {}),
             ("ill_conditioned", {}))
LM_MODEL, LM_SUITE = "smollm2", "smollm2-sample"  # the suite whose packages the LM matrices need
LM_LAYER, LM_MATRICES = "29", ("k", "q")  # 192×576 at rank 72 and 576×576 at rank 144
LM_TOKENS = 2048


def synthetic_problems() -> list:
    problems = []
    for family, options in SYNTHETIC:
        p = synthetic.with_inputs(synthetic.make(family, **SIZE, **options))
        tag = "".join(f"-{v}" for v in options.values())  # heavy_tailed-pareto-120x80-r8-s0
        problems.append(dataclasses.replace(p, name=p.name.replace(family, family + tag, 1)))
    return problems


def lm_unavailable() -> str | None:
    """Why the SmolLM2 matrices are left out here (a missing package and its install command), or None."""
    from problems import lm

    return lm.suite_unavailable(LM_SUITE)


def _cached_files(cache_dir) -> list[Path]:
    from problems import lm

    key = f"{lm.builtin_source(LM_MODEL)}-{lm.FISHER_TEXT}-t{LM_TOKENS}-s0".replace("==", "-")
    return [Path(cache_dir) / "quick" / key / f"{LM_MODEL}.{LM_LAYER}.{m}.safetensors" for m in LM_MATRICES]


def lm_problems(cache_dir=None, progress: bool = True) -> list:
    """The SmolLM2 matrices (see the module docstring); their Fisher is computed and cached if needed.
    Names carry the Fisher's token count (``smollm2.29.k-t2048``): the ``smollm2-*`` suites use more."""
    from problems import io, lm

    cache_dir = cache_dir or lm.default_cache_dir()
    files = _cached_files(cache_dir)
    if all(f.is_file() for f in files):
        return [io.load(f) for f in files]
    model = lm.load_model(LM_MODEL, cache_dir)
    names = model.select(LM_LAYER, ",".join(LM_MATRICES))
    fisher = lm.fisher(model, names, text=lm.FISHER_TEXT, tokens=LM_TOKENS, seed=0, cache_dir=cache_dir,
                       progress=progress)
    problems = lm.lm_problems(model, names, fisher, text=lm.FISHER_TEXT, seed=0)
    order = {module: k for k, module in enumerate(LM_MATRICES)}
    problems.sort(key=lambda p: order[p.meta["module"]])
    problems = [dataclasses.replace(p, name=f"{p.name}-t{LM_TOKENS}") for p in problems]
    for problem, path in zip(problems, files):
        io.save(problem, path)
    return problems


def build(progress: bool = True) -> list:
    """The suite's problems; the SmolLM2 ones only where their packages are installed."""
    return synthetic_problems() + ([] if lm_unavailable() else lm_problems(progress=progress))


@suite("quick", f"4 synthetic problems ({SIZE['m']}×{SIZE['n']}, rank {SIZE['rank']}) and "
                f"{len(LM_MATRICES)} SmolLM2 matrices with Fisher on {LM_TOKENS} tokens (computed and cached "
                "if needed), none solved by the closed-form start: the quickstart's problems")
def quick():
    return build()
