"""The ``--precision`` values every command that runs a model accepts: torch-free, so that configs
check them without importing torch (the device-dependent resolution is :func:`tokenmix.devices.resolve_precision`).

* ``fp32``: no autocast.
* ``bf16``: bfloat16 autocast (matmuls in bf16; softmax, losses and the Fourier transforms in float32).
* ``fp16``: float16 autocast with a gradient scaler, CUDA only; only ``bench`` offers it (the training
  engine has no gradient scaler).
* ``auto`` (the default): bf16 where the device runs it natively (CPUs with AVX512-BF16/AMX, CUDA
  GPUs with bf16 support) and it was measured faster with the same loss curve, else fp32.
"""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "bf16")  # every command that runs a model
BENCH_PRECISIONS = (*PRECISIONS, "fp16")  # bench has a gradient scaler for fp16


def check_precision(value: str, allowed: tuple[str, ...] = PRECISIONS) -> None:
    """Raise a one-line ValueError naming the choices unless ``value`` is one of them."""
    if value not in allowed:
        raise ValueError(f"precision {value!r} is not valid; choose one of {', '.join(allowed)}")

PRECISION_HELP = "auto (bf16 autocast where the CPU/GPU runs bf16 natively, else fp32), fp32 or bf16"
