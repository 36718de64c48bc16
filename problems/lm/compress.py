"""Replace Linear layers by rank-r factorisations and measure what it costs the model.

A Linear y = x Aᵀ + b with A ≈ U Vᵀ (U: out×r, V: in×r) becomes ``FactorizedLinear``: y = (x V) Uᵀ + b, two
Linear layers with r(in + out) weights instead of in·out (fewer when r < in·out/(in + out)), and the same
cost ratio in multiply-adds per token.
"""
from __future__ import annotations

import copy
import time

import torch

from problems.lm.loss import metrics, unit_losses


class FactorizedLinear(torch.nn.Module):
    """x ↦ (x V) Uᵀ + b: ``first`` holds Vᵀ (r×in, no bias), ``second`` holds U (out×r) and the bias."""

    def __init__(self, U: torch.Tensor, V: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        (out_f, r), in_f = U.shape, V.shape[0]
        self.first = torch.nn.Linear(in_f, r, bias=False)
        self.second = torch.nn.Linear(r, out_f, bias=bias is not None)
        with torch.no_grad():
            self.first.weight.copy_(V.T)
            self.second.weight.copy_(U)
            if bias is not None:
                self.second.bias.copy_(bias)

    @property
    def rank(self) -> int:
        return self.first.out_features

    def forward(self, x):
        return self.second(self.first(x))


def replace_linears(model: torch.nn.Module, factors: dict) -> torch.nn.Module:
    """A deep copy of ``model`` with each Linear ``name`` in ``factors`` replaced by ``FactorizedLinear(U, V)``
    (factors cast to the layer's dtype and device). The original model is untouched."""
    model = copy.deepcopy(model)
    for name, (U, V) in factors.items():
        old = model.get_submodule(name)
        if not isinstance(old, torch.nn.Linear):
            raise TypeError(f"{name} is a {type(old).__name__}, not a Linear")
        if U.shape[0] != old.out_features or V.shape[0] != old.in_features:
            raise ValueError(f"factors for {name} have shapes {tuple(U.shape)}, {tuple(V.shape)}; the layer is "
                             f"{old.out_features}×{old.in_features}")
        w = old.weight
        parent, _, leaf = name.rpartition(".")
        new = FactorizedLinear(U.to(w.device, w.dtype), V.to(w.device, w.dtype),
                               None if old.bias is None else old.bias.detach())
        setattr(model.get_submodule(parent) if parent else model, leaf, new)
    return model


def n_params(model: torch.nn.Module) -> int:
    """Distinct parameters (tied tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def compressed_metrics(lm, factors: dict, eval_batches) -> dict:
    """Held-out metrics (``problems.lm.loss.metrics``) of ``lm`` with the layers in ``factors`` (name → (U, V))
    replaced, plus n_params, the eval seconds and the per-unit losses (``units``, a ``UnitLosses``)."""
    from dataclasses import replace

    small = replace(lm, model=replace_linears(lm.model, factors)) if factors else lm
    start = time.perf_counter()
    units = unit_losses(small, eval_batches)
    return {**metrics(lm.kind, units), "n_params": n_params(small.model), "eval_time": time.perf_counter() - start,
            "units": units}
