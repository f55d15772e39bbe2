"""FF-only: no token mixing at all (the block becomes LayerNorm(x + x) followed by the feed-forward)."""

from __future__ import annotations

import torch

from tokenmix.models.mixing.registry import Mixer, register_mixer


@register_mixer("identity")
class IdentityMixing(Mixer):
    """x [batch, seq, hidden] -> x."""

    length_dependent = False  # nothing is mixed, so padding cannot reach a real token

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return x
