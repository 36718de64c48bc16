"""Turn (layer weight, Fisher) pairs into WLRA ``Problem``s.

A = the Linear weight (out × in, so a rank-r factorisation U Vᵀ becomes two Linear layers: x ↦ (x V) Uᵀ);
W = its Fisher divided by the Fisher's mean (mean(W) = 1). Rescaling W leaves every minimiser and rel_error
unchanged, and makes absolute solver parameters (regularisation, step sizes) mean the same on every matrix; the
factor is kept in ``meta["fisher_mean"]``. Exact zeros in F (weights the loss never touched) stay zero.
With ``inputs`` (``problems.lm.activations``), each problem also carries its layer's calibration input
statistics (``Problem.inputs``), for the activation-aware solvers and ``Problem.activation_error``.
"""
from __future__ import annotations

from problems.problem import Problem, rank_for_param_ratio

DEFAULT_PARAM_RATIO = 0.5


def lm_problems(lm, names: list[str], fisher_result, *, param_ratio: float = DEFAULT_PARAM_RATIO,
                text: str = "lee_background", seed: int = 0, inputs=None) -> list[Problem]:
    """One Problem per weight, at the rank with parameter ratio ``param_ratio``; meta names model, layer,
    module, shape and how the Fisher was measured. ``inputs``: an ``ActivationResult`` (or a mapping name →
    ``InputStatistics``) whose statistics the problems carry; None: none."""
    stats = getattr(inputs, "inputs", inputs)
    out = []
    for name in names:
        A = lm.weight(name).detach().float().cpu()
        F = fisher_result.fisher[name].float().cpu()
        scale = float(F.mean())
        if not scale > 0:
            raise ValueError(f"the Fisher of {lm.name}:{name} is all zero (the loss does not reach this weight)")
        block, module = lm.linears[name]
        m, n = A.shape
        meta = {"model": lm.name, "source": lm.source, "layer": block, "module": module, "name": name,
                "shape": [m, n], "fisher_text": text, "fisher_tokens": fisher_result.tokens, "fisher_seed": seed,
                "fisher_mean": scale}
        layer_inputs = None
        if stats is not None:
            layer_inputs = stats[name]
            meta["input_tokens"] = layer_inputs.tokens
        out.append(Problem(A.clone(), F / scale, rank_for_param_ratio(m, n, param_ratio),
                           name=f"{lm.name}.{block}.{module}", meta=meta, inputs=layer_inputs))
    return out
