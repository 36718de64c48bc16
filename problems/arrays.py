"""Turning user arrays into the tensors problems store, with one clear error per defect."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_float_tensor(x: Any, what: str, dim: int = 2) -> torch.Tensor:
    """A contiguous CPU floating tensor of ``dim`` dimensions from an array-like (integers and booleans become
    float64, float16/bfloat16 float32), or a TypeError/ValueError naming ``what`` and its defect (non-numeric,
    complex, wrong number of dimensions, empty, NaN/Inf)."""
    if isinstance(x, torch.Tensor):
        t = x.detach().to("cpu")
    else:
        arr = np.asarray(x)
        if arr.dtype == object or arr.dtype.kind in "USV":
            raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise TypeError(f"{what} must be real, got complex dtype {t.dtype}")
    if t.dtype == torch.bool or not t.is_floating_point():
        t = t.to(torch.float64)
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)  # float16/bfloat16 storage: compute in float32 at least
    if t.dim() != dim:
        shape = "a 2-D matrix" if dim == 2 else f"{dim}-D"
        raise ValueError(f"{what} must be {shape}, got {t.dim()}-D with shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{what} is empty (shape {tuple(t.shape)})")
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{what} contains {bad} NaN/Inf entries")
    return t.contiguous()
