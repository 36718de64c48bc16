"""Empirical diagonal Fisher information of Linear weights, computed once and cached.

    F = (1/B) Σ_b (∂L_b/∂θ)²        (element-wise square of the gradient of batch b's mean loss)

over B batches of the importance text, with L the model's own loss (``problems.lm.loss``): this is the
importance FWSVD (Hsu et al. 2022) and TFWSVD use. Only the chosen weights require gradients, so the backward pass
stops at the earliest chosen block. Cost: one forward + backward pass per batch, about 0.8 GFLOP per token for
SmolLM2 when block 0 is chosen (its 49k-word output layer included); ``FisherResult.tokens_per_second`` records
the measured rate.

Cache (``problems.lm.cache``, kind "fisher"): one tensor per weight in
``<cache>/fisher/<model>/<text>-t<tokens>-s<seed>-<digest>.safetensors``. Any cached file with the same model,
text, token count and seed whose weights include the requested ones is reused (a weight's gradient does not
depend on which other weights are being differentiated).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from problems.files import atomic_path
from problems.lm.cache import cache_metadata, find_cached, new_cache_file, read_metadata
from problems.lm.loss import batch_loss
from problems.lm.text import batches_for


@dataclass
class FisherResult:
    fisher: dict  # qualified Linear name -> float32 tensor shaped like the weight
    tokens: int  # tokens actually processed (the request rounded up to whole blocks/batches)
    seconds: float  # compute time when computed, of the original computation when loaded
    path: Path | None
    cached: bool

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


def compute_fisher(lm, batches, names: list[str], progress: bool = True) -> tuple[dict, int, float]:
    """(F per name, tokens processed, seconds) for the given batches; see the module docstring."""
    from tqdm.auto import tqdm

    params = dict(lm.model.named_parameters())
    flags = {n: p.requires_grad for n, p in params.items()}
    chosen = {n: lm.weight(n) for n in names}
    acc = {n: torch.zeros_like(w, dtype=torch.float32) for n, w in chosen.items()}
    for p in params.values():
        p.requires_grad_(False)
    for w in chosen.values():
        w.requires_grad_(True)
    tokens, start = 0, time.perf_counter()
    try:
        bar = tqdm(batches, desc=f"Fisher {lm.name}", unit="batch", disable=not progress)
        for batch in bar:
            loss, _ = batch_loss(lm, batch)
            grads = torch.autograd.grad(loss, list(chosen.values()))
            for n, g in zip(chosen, grads):
                acc[n] += g.detach().float().pow(2)
            tokens += batch.n_tokens
            bar.set_postfix(tokens_per_s=f"{tokens / (time.perf_counter() - start):.0f}")
    finally:
        for n, p in params.items():
            p.requires_grad_(flags[n])
    return {n: a / len(batches) for n, a in acc.items()}, tokens, time.perf_counter() - start


def fisher(lm, names: list[str], *, text: str = "lee_background", tokens: int = 16000, seed: int = 0,
           cache_dir=None, progress: bool = True) -> FisherResult:
    """Fisher of the weights ``names`` of ``lm``: loaded from the cache when a matching file exists, else
    computed and written there (atomically). ``cache_dir=None`` computes without caching."""
    from safetensors.torch import load_file, save_file

    pairs = {lm.linears[n] for n in names}
    if cache_dir is not None:
        path = find_cached(cache_dir, lm.source, text, tokens, seed, pairs)
        if path is not None:
            meta = read_metadata(path)
            by_pair = {tuple(v): k for k, v in json.loads(meta["names"]).items()}
            stored = load_file(str(path))
            return FisherResult({n: stored[by_pair[lm.linears[n]]] for n in names}, int(meta["tokens_used"]),
                                float(meta["seconds"]), path, True)
    batches = batches_for(lm, text, tokens, seed)
    values, used, seconds = compute_fisher(lm, batches, names, progress)
    path = None
    if cache_dir is not None:
        path = new_cache_file(cache_dir, lm, names, text, tokens, seed, "fisher")
        meta = {**cache_metadata(lm, names, text, tokens, seed, used, seconds),
                "names": json.dumps({n: lm.linears[n] for n in names})}
        with atomic_path(path) as tmp:
            save_file({n: v.contiguous() for n, v in values.items()}, str(tmp), metadata=meta)
    return FisherResult(values, used, seconds, path, False)
