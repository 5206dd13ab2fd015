"""Choosing the torch device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda[:N]``."""

from __future__ import annotations

import torch

from core.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


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
            raise ConfigError("CUDA was asked for (--device cuda) but no CUDA GPU is available "
                              "to PyTorch on this machine; use --device cpu or auto")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{name} asked for, but only {torch.cuda.device_count()} CUDA "
                              "device(s) are present")
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
