"""Which device to run on, what to call it, and how to wait for it: a torch-only leaf that models
(the Fourier autotuner), training and the benchmarks all use, so none of them imports another for it."""

from __future__ import annotations

import torch


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
