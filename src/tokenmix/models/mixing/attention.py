"""Multi-head self-attention (BERT, and the attention layers of FNet-Hybrid).

Uses ``torch.nn.functional.scaled_dot_product_attention`` so PyTorch picks the fastest kernel
(flash / memory-efficient / math) for the device. Padding is honoured as a key mask; when nothing is
padded the mask is None, which keeps the fused kernels available. Like the official Flax
``SelfAttention``: biases on q/k/v/out, weights and biases N(0, 0.02), dropout on the attention
probabilities only. Deliberate difference: q/k/v are one fused [3d, d] projection (one matmul
instead of three; the same function).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tokenmix.models.config import ModelConfig
from tokenmix.models.initializers import normal_linear
from tokenmix.models.mixing.registry import Mixer, register_mixer


@register_mixer("attention")
class SelfAttention(Mixer):
    """x [batch, seq, hidden] -> softmax(q k^T / sqrt(d_head)) v per head, projected back to [batch, seq, hidden]."""

    uses_padding_mask = True
    length_dependent = False  # padded keys are masked: an example's output ignores its padding
    options = ("num_heads", "attention_dropout")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        d, std = config.hidden_size, config.initializer_range
        self.num_heads = config.num_heads
        self.dropout = config.attention_dropout
        self.qkv = normal_linear(d, 3 * d, std, bias_std=std)
        self.out = normal_linear(d, d, std, bias_std=std)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, seq_len, d = x.shape
        q, k, v = self.qkv(x).view(batch, seq_len, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        mask = None if padding_mask is None else padding_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, seq_len, d))
