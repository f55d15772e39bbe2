"""Activation functions by config name. The official FNet/Sparse Mixer code uses Flax's ``nn.gelu``,
whose default is the tanh approximation (Hugging Face calls it ``gelu_new``)."""

from __future__ import annotations

import functools

import torch.nn.functional as F

ACTIVATIONS = {
    "gelu_tanh": functools.partial(F.gelu, approximate="tanh"),
    "gelu": F.gelu,
}
