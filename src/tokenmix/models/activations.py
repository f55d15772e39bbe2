"""Activation functions by config name (the names are ``ModelConfig``'s ``ACTIVATIONS``). The official
FNet/Sparse Mixer code uses Flax's ``nn.gelu``, whose default is the tanh approximation (Hugging Face
calls it ``gelu_new``)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

ACTIVATION_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu_tanh": functools.partial(F.gelu, approximate="tanh"),
    "gelu": F.gelu,
}
