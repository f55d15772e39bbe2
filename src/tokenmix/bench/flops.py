"""Achieved TFLOP/s of the dense parts of a step against the device's peak.

The dense parts are the matrix products (linear layers, attention score and value products, the
DFT-matmul form of the Fourier transform): their FLOPs are counted exactly by running one step under
``torch.utils.flop_counter.FlopCounterMode``, so the figure holds for any model, ours or a peer's.
FFTs, element-wise ops and the optimizer are not counted. Peaks are the vendors' dense (no
structured sparsity) datasheet figures for the precision the matmuls run in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

# Datasheet dense peak TFLOP/s: fp32 (CUDA cores), tf32 / bf16 / fp16 (tensor cores). First match wins.
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"H200", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (r"H100.*PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    (r"H100", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (r"A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    (r"L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.1, "fp16": 362.1}),
    (r"\bL4\b", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}),
    (r"\bA10\b", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}),
    (r"V100", {"fp32": 15.7, "fp16": 125.0}),
    (r"\bT4\b", {"fp32": 8.1, "fp16": 65.0}),
)


def matmul_precision(amp: str, tf32: bool) -> str:
    """The precision the dense matmuls run in: the autocast dtype, else tf32 or fp32."""
    return amp if amp in ("bf16", "fp16") else "tf32" if tf32 else "fp32"


def peak_tflops(device_name: str, precision: str) -> float | None:
    """Datasheet peak for a CUDA device name and precision; None on CPU or for unknown devices."""
    for pattern, peaks in PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return peaks.get(precision)
    return None


def _cpu_attention_formulas() -> dict[Any, Callable[..., int]]:
    """torch counts the CUDA attention kernels but not the fused CPU one: the same formulas for it."""
    aten = torch.ops.aten
    return {
        aten._scaled_dot_product_flash_attention_for_cpu:
            lambda q, k, v, *args, **kwargs: sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda grad, q, k, v, *args, **kwargs: sdpa_backward_flop_count(grad, q, k, v),
    }


def count_matmul_flops(step: Callable[[], Any]) -> int:
    """FLOPs of the matrix products one call of ``step`` performs."""
    with FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas()) as counter:
        step()
    return int(counter.get_total_flops())
