"""Is the model being traced? Data-dependent checks are skipped then."""

from __future__ import annotations

import torch


def is_tracing() -> bool:
    """True under torch.compile, TorchScript tracing or ONNX export, where data-dependent Python
    checks (which synchronise with the device) must be skipped."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
