"""Where per-Linear statistics of a model's calibration text are cached, and how a cached file is found.

One key scheme for every kind of statistic (``kind``: "fisher", "activations"):
``<cache>/<kind>/<model slug>-<digest>/<text>-t<tokens>-s<seed>-<names digest>.safetensors``. The metadata of
each file records the model, text, token counts, seconds and, as JSON, the (block, module) pairs it holds
(``pairs``) and those the model has (``model_pairs``). Any file with the same kind, model, text, token count and
seed whose pairs include the requested ones is a hit: a Linear's statistic does not depend on which other
Linears were measured with it.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from problems.lm.text import text_key


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")[:80]


def cache_folder(cache_dir, source: str, kind: str = "fisher") -> Path:
    """Where the ``kind`` files of the model identified by ``source`` live."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    return Path(cache_dir) / kind / f"{_slug(source)}-{digest}"


def _prefix(text: str, tokens: int, seed: int) -> str:
    return f"{_slug(text_key(text))}-t{int(tokens)}-s{int(seed)}-"


def stored_pairs(meta: dict, key: str = "pairs") -> set[tuple[int, str]]:
    """The (block, module) pairs listed under ``key`` in a cache file's metadata."""
    return {tuple(p) for p in json.loads(meta.get(key, "[]"))}


def read_metadata(path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def find_cached(cache_dir, source: str, text: str, tokens: int, seed: int, pairs=None,
                kind: str = "fisher") -> Path | None:
    """A ``kind`` cache file for (model, text, tokens, seed) holding every (block, module) pair in ``pairs``
    (None: every Linear of the model), or None."""
    folder = cache_folder(cache_dir, source, kind)
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob(_prefix(text, tokens, seed) + "*.safetensors")):
        try:
            meta = read_metadata(path)
        except Exception:  # a truncated or foreign file is not a cache hit
            continue
        need = stored_pairs(meta, "model_pairs") if pairs is None else set(pairs)
        if need <= stored_pairs(meta):
            return path
    return None


def new_cache_file(cache_dir, lm, names, text: str, tokens: int, seed: int, kind: str) -> Path:
    """The path a new ``kind`` file for ``names`` of ``lm`` is written to (its folder created)."""
    folder = cache_folder(cache_dir, lm.source, kind)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(sorted(names)).encode()).hexdigest()[:10]
    return folder / f"{_prefix(text, tokens, seed)}{digest}.safetensors"


def cache_metadata(lm, names, text: str, tokens: int, seed: int, used: int, seconds: float) -> dict:
    """The metadata every cache file carries (see the module docstring); writers add their own keys."""
    return {"model": lm.source, "text": text_key(text), "tokens": str(tokens), "seed": str(seed),
            "tokens_used": str(used), "seconds": repr(seconds),
            "pairs": json.dumps(sorted({lm.linears[n] for n in names})),
            "model_pairs": json.dumps(sorted(set(lm.linears.values())))}
