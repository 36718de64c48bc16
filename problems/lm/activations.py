"""Calibration statistics of the inputs of a model's Linear layers, measured once and cached.

For each chosen Linear y = A x, over the T tokens of the calibration text (the Fisher's batches,
``problems.lm.text.batches_for``, so both importances see the same text):

    C = (1/T) Σ_t x_t x_tᵀ  (the input Gram),    μ = (1/T) Σ_t |x_t|  (the mean magnitude per input)

as ``problems.inputs.InputStatistics`` (what ``asvd`` and ``svd_llm`` need). Forward pre-hooks on the Linears
read their inputs during one no-grad forward pass per batch (per sentence list for MiniLM's pairs, whose
padding tokens are excluded by the attention mask); the causal LM's output layer is skipped (the forward runs
``model.base_model``). Linears that read the same tensor share one statistic, computed once: the sharing is
found by identity of the input tensors in the first forward pass (Llama: q/k/v, gate/up; BERT: q/k/v, its
attention output, intermediate and output dense layers each read their own input), never from a table.
Cost per token: the forward pass plus 2n² multiply-adds per distinct input of width n (float32 products,
float64 sums).

Cache (``problems.lm.cache``, kind "activations"): one gram and one abs_mean tensor per distinct input (float32),
and in the metadata which (block, module) pairs read each; the same key (model, text, tokens, seed) as the Fisher.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from problems.files import atomic_path
from problems.inputs import InputStatistics
from problems.lm.cache import cache_metadata, find_cached, new_cache_file, read_metadata
from problems.lm.text import batches_for

KIND = "activations"


@dataclass
class ActivationResult:
    inputs: dict  # qualified Linear name -> InputStatistics; Linears reading one tensor share one object
    groups: dict  # qualified Linear name -> the first requested Linear reading the same input
    tokens: int  # calibration tokens T (padding excluded)
    seconds: float  # compute time when computed, of the original computation when loaded
    path: Path | None
    cached: bool


class _Moments:
    """Running Σ x xᵀ and Σ |x| over the rows of the inputs seen (float32 products, float64 sums)."""

    def __init__(self):
        self.gram = self.abs_sum = None
        self.tokens = 0

    def add(self, x: torch.Tensor, mask: torch.Tensor | None) -> None:
        x = x.detach()
        x = (x.reshape(-1, x.shape[-1]) if mask is None else x[mask.bool()]).float()
        gram, abs_sum = (x.T @ x).double(), x.abs().sum(0, dtype=torch.float64)
        self.gram = gram if self.gram is None else self.gram + gram
        self.abs_sum = abs_sum if self.abs_sum is None else self.abs_sum + abs_sum
        self.tokens += x.shape[0]

    def statistics(self) -> InputStatistics:
        return InputStatistics((self.gram / self.tokens).float(), (self.abs_sum / self.tokens).float(), self.tokens)


def _forwards(lm, batch) -> list[tuple[dict, torch.Tensor | None]]:
    """(model inputs, token mask or None) of each forward pass of a batch: a causal batch is one pass over
    whole blocks (no padding); a pair batch is two, anchors and positives, each padded to its longest."""
    if lm.kind == "causal":
        return [(batch.inputs, None)]
    return [(enc, enc["attention_mask"]) for enc in (batch.inputs["anchor"], batch.inputs["positive"])]


def _shared_inputs(captured: dict) -> dict:
    """name -> the first name (in the order given) whose captured input is the very same tensor object."""
    groups, firsts = {}, []
    for name, x in captured.items():
        groups[name] = next((f for f in firsts if captured[f] is x), name)
        if groups[name] == name:
            firsts.append(name)
    return groups


def _capture_inputs(lm, modules: dict, inputs: dict) -> dict:
    """One forward pass, holding the tensor each module reads: name -> tensor."""
    captured: dict = {}
    handles = [mod.register_forward_pre_hook(lambda _, args, n=n: captured.__setitem__(n, args[0]))
               for n, mod in modules.items()]
    try:
        lm.model.base_model(**inputs)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in modules if n not in captured]
    if missing:
        raise ValueError(f"{', '.join(missing)} never ran in {lm.name}'s forward pass")
    return {n: captured[n] for n in modules}


def compute_input_statistics(lm, batches, names: list[str], progress: bool = True) -> tuple[dict, dict, int, float]:
    """(InputStatistics per name, groups, tokens, seconds) over ``batches``; see the module docstring."""
    from tqdm.auto import tqdm

    modules = {n: lm.model.get_submodule(n) for n in names}
    moments, groups, handles, current = {}, None, [], {"mask": None}
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for batch in tqdm(batches, desc=f"inputs {lm.name}", unit="batch", disable=not progress):
                for inputs, mask in _forwards(lm, batch):
                    if groups is None:  # the first pass holds every input, so one object means one tensor
                        captured = _capture_inputs(lm, modules, inputs)
                        groups = _shared_inputs(captured)
                        moments = {f: _Moments() for f in dict.fromkeys(groups.values())}
                        for f, mom in moments.items():
                            mom.add(captured[f], mask)
                        del captured
                        handles = [modules[f].register_forward_pre_hook(
                            lambda _, args, f=f: moments[f].add(args[0], current["mask"])) for f in moments]
                        continue
                    current["mask"] = mask
                    lm.model.base_model(**inputs)
    finally:
        for h in handles:
            h.remove()
    stats = {f: mom.statistics() for f, mom in moments.items()}
    tokens = next(iter(moments.values())).tokens
    return {n: stats[groups[n]] for n in names}, groups, tokens, time.perf_counter() - start


def _load(path: Path, lm, names: list[str]) -> ActivationResult:
    from safetensors.torch import load_file

    meta = read_metadata(path)
    stored = load_file(str(path))
    tokens = int(meta["tokens_used"])
    key_of = {tuple(pair): key for key, pairs in json.loads(meta["inputs"]).items() for pair in pairs}
    by_key: dict = {}
    inputs, groups = {}, {}
    for n in names:
        key = key_of[lm.linears[n]]
        if key not in by_key:
            by_key[key] = (InputStatistics(stored[f"{key}.gram"], stored[f"{key}.abs_mean"], tokens), n)
        inputs[n], groups[n] = by_key[key]
    return ActivationResult(inputs, groups, tokens, float(meta["seconds"]), path, True)


def input_statistics(lm, names: list[str], *, text: str = "lee_background", tokens: int = 16000, seed: int = 0,
                     cache_dir=None, progress: bool = True) -> ActivationResult:
    """Input statistics of the Linears ``names`` of ``lm``, on ``tokens`` tokens of ``text`` cut as for the
    Fisher (same ``seed``): loaded from the cache when a matching file exists, else computed and written there
    (atomically). ``cache_dir=None`` computes without caching."""
    from safetensors.torch import save_file

    if cache_dir is not None:
        path = find_cached(cache_dir, lm.source, text, tokens, seed, {lm.linears[n] for n in names}, kind=KIND)
        if path is not None:
            return _load(path, lm, names)
    batches = batches_for(lm, text, tokens, seed)
    inputs, groups, used, seconds = compute_input_statistics(lm, batches, names, progress)
    path = None
    if cache_dir is not None:
        path = new_cache_file(cache_dir, lm, names, text, tokens, seed, KIND)
        firsts = sorted(set(groups.values()), key=names.index)
        keys = {f: f"input{i}" for i, f in enumerate(firsts)}
        tensors = {}
        for f, key in keys.items():
            tensors[f"{key}.gram"] = inputs[f].gram.contiguous()
            tensors[f"{key}.abs_mean"] = inputs[f].abs_mean.contiguous()
        readers = {keys[f]: [lm.linears[n] for n in names if groups[n] == f] for f in firsts}
        meta = {**cache_metadata(lm, names, text, tokens, seed, used, seconds), "inputs": json.dumps(readers)}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
    return ActivationResult(inputs, groups, used, seconds, path, False)
