"""Bring-your-own problems: read and write ``.npz`` and ``.safetensors`` files.

Both formats hold the arrays ``A`` and ``W`` (m×n) and optionally scalars ``rank`` and ``f_star``, and the
layer's input statistics (``problems.inputs``) as ``input_gram`` (n×n), ``input_abs_mean`` (n) and
``input_tokens``; ``save`` also writes ``name`` and ``meta`` (JSON) so a round trip is lossless. Every failure to read a file raises
``ProblemFileError`` (a ValueError) naming the file and what is wrong with it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from problems.files import atomic_path
from problems.inputs import InputStatistics
from problems.problem import Problem

FORMATS = (".npz", ".safetensors")


class ProblemFileError(ValueError):
    """A problem file is missing, unreadable or lacks what a problem needs."""


def _read_npz(path: Path) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    text = {k: str(arrays.pop(k)) for k in ("name", "meta") if k in arrays}
    return arrays, text


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}
        text = dict(f.metadata() or {})
    return arrays, text


def _scalar(path: Path, arrays: dict, text: dict, key: str):
    """The scalar ``key`` stored as a one-element array or as JSON metadata; None when absent."""
    if key in arrays:
        value = np.asarray(arrays[key])
        if value.size != 1:
            raise ProblemFileError(f"{path}: {key!r} must be a single number, got an array of shape {value.shape}")
        value = value.item()
    elif key in text and text[key] not in ("", "None"):
        try:
            value = json.loads(text[key])
        except json.JSONDecodeError:
            raise ProblemFileError(f"{path}: {key!r} must be a number, got {text[key]!r}") from None
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProblemFileError(f"{path}: {key!r} must be a number, got {value!r}")
    return value


def _rank(path: Path, value) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise ProblemFileError(f"{path}: 'rank' must be an integer, got {value!r}")
        value = int(value)
    return value


def _meta(path: Path, text: dict) -> dict:
    if not text.get("meta"):
        return {}
    try:
        meta = json.loads(text["meta"])
    except json.JSONDecodeError as exc:
        raise ProblemFileError(f"{path}: 'meta' is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ProblemFileError(f"{path}: 'meta' must be a JSON object, got {type(meta).__name__} {meta!r:.60}")
    return meta


INPUT_ARRAYS = ("input_gram", "input_abs_mean")


def _inputs(path: Path, arrays: dict, text: dict) -> InputStatistics | None:
    present = [k for k in INPUT_ARRAYS if k in arrays]
    if not present:
        return None
    if len(present) < len(INPUT_ARRAYS):
        raise ProblemFileError(f"{path}: input statistics need both {' and '.join(INPUT_ARRAYS)}; "
                               f"found only {present[0]}")
    try:
        return InputStatistics(arrays["input_gram"], arrays["input_abs_mean"],
                               int(_scalar(path, arrays, text, "input_tokens") or 0))
    except (TypeError, ValueError) as exc:
        raise ProblemFileError(f"{path}: {exc}") from exc


def _input_arrays(problem: Problem) -> dict:
    s = problem.inputs
    if s is None:
        return {}
    return {"input_gram": s.gram.numpy(), "input_abs_mean": s.abs_mean.numpy(),
            "input_tokens": np.array(s.tokens, dtype=np.int64)}


def load(path, rank: int | None = None) -> Problem:
    """Read a problem; ``rank`` overrides the file's own (one of them must be given)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ProblemFileError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise ProblemFileError(f"{path}: no such file")
    try:
        arrays, text = _read_npz(path) if path.suffix == ".npz" else _read_safetensors(path)
    except Exception as exc:  # corrupt zip, bad header, truncated file, ...
        raise ProblemFileError(f"{path}: cannot read as {path.suffix}: {exc}") from exc
    missing = [k for k in ("A", "W") if k not in arrays]
    if missing:
        raise ProblemFileError(f"{path}: missing array(s) {', '.join(missing)}; found {sorted(arrays) or 'none'}")
    rank = rank if rank is not None else _scalar(path, arrays, text, "rank")
    if rank is None:
        raise ProblemFileError(f"{path}: the file stores no 'rank'; pass rank=...")
    meta = _meta(path, text)
    meta.setdefault("source", str(path))
    inputs = _inputs(path, arrays, text)
    try:
        return Problem(arrays["A"], arrays["W"], _rank(path, rank), name=text.get("name") or path.stem,
                       f_star=_scalar(path, arrays, text, "f_star"), meta=meta, inputs=inputs)
    except (TypeError, ValueError) as exc:
        raise ProblemFileError(f"{path}: {exc}") from None


def save(problem: Problem, path) -> Path:
    """Write ``problem`` to ``path`` (.npz or .safetensors), atomically (temp file, then rename)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ProblemFileError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(FORMATS)}")
    A, W = problem.A.numpy(), problem.W.numpy()
    meta = json.dumps(problem.meta, default=str)
    with atomic_path(path, suffix=path.suffix) as tmp:  # np.savez appends .npz to a name without it
        if path.suffix == ".npz":
            extra = {} if problem.f_star is None else {"f_star": np.float64(problem.f_star)}
            np.savez(tmp, A=A, W=W, rank=np.int64(problem.rank), name=np.str_(problem.name),
                     meta=np.str_(meta), **extra, **_input_arrays(problem))
        else:
            from safetensors.numpy import save_file

            tensors = {"A": np.ascontiguousarray(A), "W": np.ascontiguousarray(W),
                       "rank": np.array(problem.rank, dtype=np.int64)}
            if problem.f_star is not None:
                tensors["f_star"] = np.array(problem.f_star, dtype=np.float64)
            tensors.update({k: np.ascontiguousarray(v) for k, v in _input_arrays(problem).items()})
            save_file(tensors, str(tmp), metadata={"name": problem.name, "meta": meta})
    return path
