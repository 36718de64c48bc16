"""Where and in what precision a solve runs: device and dtype names resolved once, and CUDA synchronisation
(a CUDA kernel launch returns at once, so any clock must wait for queued work before it is read)."""
from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64, "single": torch.float32, "double": torch.float64}


def resolve_device(device, *, here: bool = True) -> torch.device:
    """A torch.device from a name, a device or None (the CPU); ValueError for a name torch does not know or
    (``here``: the device must exist in this process) a CUDA device torch cannot see."""
    try:
        device = torch.device(device if device is not None else "cpu")
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r} (use cpu, cuda or cuda:N): {exc}") from None
    if device.type == "cuda" and not here:
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} requested but torch sees {torch.cuda.device_count()} "
                             "CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported: use cpu or cuda")
    return device


def resolve_dtype(dtype, default: torch.dtype) -> torch.dtype:
    """float32 or float64 from a name or a torch dtype (None: ``default``); ValueError otherwise."""
    if dtype is None:
        return default
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype, dtype)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dtype


def synchronize(device) -> None:
    """Wait for all queued work on ``device`` (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
