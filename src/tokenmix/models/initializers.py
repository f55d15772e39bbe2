"""Initialisers of the official FNet code (Flax defaults differ from PyTorch's)."""

from __future__ import annotations

import math

import torch
from torch import nn

# std of a standard normal truncated to [-2, 2]; Flax's variance_scaling divides by it.
_TRUNCATED_STD = 0.87962566103423978


@torch.no_grad()
def lecun_normal_(tensor: torch.Tensor) -> torch.Tensor:
    """Flax ``lecun_normal``: truncated normal with variance 1/fan_in (fan_in = first axis of a
    Flax [in, out] kernel, i.e. the second axis of a torch [out, in] weight)."""
    fan_in = tensor.shape[-1]
    std = math.sqrt(1.0 / fan_in) / _TRUNCATED_STD
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def normal_linear(in_features: int, out_features: int, std: float, bias_std: float | None = None) -> nn.Linear:
    """Linear layer with weight N(0, std) and bias N(0, bias_std), or zero bias when bias_std is None."""
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        layer.weight.normal_(0.0, std)
        if bias_std is None:
            layer.bias.zero_()
        else:
            layer.bias.normal_(0.0, bias_std)
    return layer
