"""Device and dtype resolution, done once per component: ``auto`` -> CUDA when present, bf16 there, fp32 on CPU."""

from __future__ import annotations

import torch

from vila_m3_core.errors import VilaM3Error

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}  # fmt: skip


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or ``None``) -> cuda when available, else cpu; anything else as torch understands it."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VilaM3Error("--device cuda was asked for but no CUDA GPU is available; use --device cpu.")
    return device


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """``auto`` -> bfloat16 on CUDA (the checkpoints' dtype), float32 on CPU; else float32/bfloat16/float16."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device is not None and device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise VilaM3Error(f"Unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16.")
    return _DTYPES[dtype]
