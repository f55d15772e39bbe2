"""Which device to run on, what to call it, and how to wait for it: a torch-only leaf that models
(the Fourier autotuner), training and the benchmarks all use, so none of them imports another for it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from tokenmix.precisions import BENCH_PRECISIONS, check_precision

# CPU flags of native bf16 matmuls (AVX512-BF16 dot products, AMX tiles): without them bf16 autocast
# only emulates, and is slower than float32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if visible, else cpu; anything else must exist on this machine."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} requested but no CUDA GPU is visible; use --device cpu")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {device} requested but only {count} CUDA GPU(s) are visible "
                             f"(cuda:0..cuda:{count - 1}); pick one of those or --device cpu")
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device} requested but Apple MPS is not available; use --device cpu")
    elif resolved.type != "cpu":
        backend = getattr(torch, resolved.type, None)
        if backend is None or not getattr(backend, "is_available", lambda: False)():
            raise ValueError(f"device {device} is not available on this machine; use --device cpu or cuda")
    return resolved


def device_name(device: torch.device) -> str:
    """The GPU's model name, else e.g. ``cpu (8 threads)``: recorded with every measurement, and part
    of the autotuner's cache key (a choice measured on one machine is not reused on another)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock reading covers it (CUDA is asynchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split()[2:])


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 matmuls natively: a CUDA GPU that supports bf16 (Ampere and newer),
    or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``--precision`` on ``device`` (None = float32, no autocast): the one
    resolver of the training engine, inference and the benchmarks. ``auto`` is bf16 where
    :func:`bf16_native` holds (measured faster for every model in pretraining, fine-tuning and inference
    on an AVX512-BF16 CPU with the same loss curves: README "Precision"), else float32."""
    check_precision(precision, BENCH_PRECISIONS)
    if precision == "auto":
        return torch.bfloat16 if bf16_native(device) else None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision fp16 needs a CUDA device, not {device.type}; use bf16 or fp32")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def precision_name(dtype: torch.dtype | None) -> str:
    """fp32, bf16 or fp16: what a record says the step ran in (``auto`` resolved)."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context of ``--precision`` on ``device`` (disabled for float32)."""
    dtype = resolve_precision(precision, device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
