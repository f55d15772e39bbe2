"""FF-only: no token mixing at all (the block becomes LayerNorm(x + x) followed by the feed-forward)."""

from __future__ import annotations

import torch
from torch import nn

from tokenmix.models.config import ModelConfig
from tokenmix.models.mixing.registry import register_mixer


@register_mixer("identity")
class IdentityMixing(nn.Module):
    uses_padding_mask = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return x
