"""Linear and Random mixing: Y = W_seq X W_hid with dense [L, L] and [d, d] matrices.

``linear`` learns both matrices (init N(0, 0.02), as the official ``LinearTransform``); ``random``
keeps them fixed. The official code regenerates the random matrices from a seed; we store them as
persistent buffers instead, so a saved model is reproduced exactly whatever the RNG does.

The sequence matrix is sized for ``max_position_embeddings``; a shorter input uses its leading
[L, L] block (as Hugging Face slices its DFT matrix). That is a different map than the one used at
full length, which is why the official pipelines pad every input to the maximum length.
"""

from __future__ import annotations

import torch
from torch import nn

from tokenmix.models.config import ModelConfig
from tokenmix.models.initializers import lecun_normal_
from tokenmix.models.mixing.registry import Mixer, register_mixer


def _mix(x: torch.Tensor, seq_kernel: torch.Tensor, hidden_kernel: torch.Tensor) -> torch.Tensor:
    """x [batch, L, d] -> W_seq[:L, :L] @ x @ W_hid."""
    seq_len = x.shape[-2]
    return seq_kernel[:seq_len, :seq_len] @ (x @ hidden_kernel)


@register_mixer("linear")
class LinearMixing(Mixer):
    """Learned W_seq [max_position_embeddings, max_position_embeddings] and W_hid [hidden, hidden]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        n, d = config.max_position_embeddings, config.hidden_size
        self.seq_kernel = nn.Parameter(torch.empty(n, n).normal_(0.0, config.initializer_range))
        self.hidden_kernel = nn.Parameter(torch.empty(d, d).normal_(0.0, config.initializer_range))

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return _mix(x, self.seq_kernel, self.hidden_kernel)


@register_mixer("random")
class RandomMixing(Mixer):
    """Fixed random W_seq and W_hid (LeCun-normal), stored as buffers so that a saved model keeps them."""

    seq_kernel: torch.Tensor
    hidden_kernel: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        n, d = config.max_position_embeddings, config.hidden_size
        self.register_buffer("seq_kernel", lecun_normal_(torch.empty(n, n)))
        self.register_buffer("hidden_kernel", lecun_normal_(torch.empty(d, d)))

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return _mix(x, self.seq_kernel.to(x.dtype), self.hidden_kernel.to(x.dtype))
