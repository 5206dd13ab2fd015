"""Choosing the torch device (``auto``: CUDA when present, else CPU; ``cpu``; ``cuda[:N]``) and the
arithmetic precision (``auto``: bfloat16 where the hardware computes it natively, else float32).
"""

from __future__ import annotations

import contextlib

import torch

from core.errors import ConfigError
from core.training.config import PRECISIONS


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn a user's device choice into a ``torch.device``; ConfigError if it is unavailable."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                "CUDA was asked for (--device cuda) but no CUDA GPU is available "
                "to PyTorch on this machine; use --device cpu or auto"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{name} asked for, but only {torch.cuda.device_count()} CUDA device(s) are present"
            )
        return device
    raise ConfigError(f"unknown device {name!r}; use one of: auto, cpu, cuda, cuda:N")


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> None:
    """Keep large freed tensors in glibc's heap instead of unmapping them after every use.

    CPU training allocates activations of tens of MB per layer per batch; glibc maps each one
    fresh (zero-filled pages) and unmaps it on free, which a profile showed costing about 40 % of
    the CPU time in the kernel (docs/performance.md). The trade-off: the process keeps its peak
    heap after a run. Linux/glibc only; a no-op elsewhere or when it cannot be applied.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return
    _ALLOCATOR_TUNED = True
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX: no mmap for big blocks
        libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: do not give the heap top back
    except (OSError, AttributeError):
        return


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX), where oneDNN runs
    bfloat16 convolutions faster than float32. Elsewhere bfloat16 is emulated and slower."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(
    name: str | None, device: torch.device, model: torch.nn.Module | None = None
) -> torch.dtype | None:
    """The autocast dtype for a precision choice on ``device``: ``torch.bfloat16`` for mixed
    precision, ``None`` for plain float32.

    ``auto`` picks bfloat16 on a CUDA GPU that supports it and on a CPU with native bfloat16
    when the ``model`` gains from it there (its ``bf16_on_cpu``, see core.models: the U-Nets
    train about 1.6x and predict 1.3-1.7x faster), float32 elsewhere. Weights, optimizer state,
    losses and probabilities stay float32 either way.
    ``bf16`` asks for it anywhere (emulated, slow, on CPUs without it); ``fp32`` never uses it.
    """
    name = (name or "auto").strip().lower()
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r}; use one of: {', '.join(PRECISIONS)}")
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        gains = model is None or getattr(model, "bf16_on_cpu", True)
        return torch.bfloat16 if gains and cpu_has_native_bf16() else None
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """``"bf16"`` or ``"fp32"``: the name of a :func:`resolve_precision` result."""
    return "bf16" if dtype == torch.bfloat16 else "fp32"


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision in ``dtype`` on ``device`` (a no-op context for float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
