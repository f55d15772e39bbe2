"""Building blocks shared by every variant: embeddings, feed-forward, the post-LN (or pre-LN) block, the pooler.

They follow the official FNet code (``f_net/layers.py``): LayerNorm eps 1e-12, tanh-approximate GELU
(Flax ``nn.gelu``'s default), post-LayerNorm residual blocks, and its initialisers.
"""

from __future__ import annotations

import torch
from torch import nn

from tokenmix.models.activations import ACTIVATION_FUNCTIONS
from tokenmix.models.config import ModelConfig
from tokenmix.models.initializers import lecun_normal_, normal_linear
from tokenmix.models.mixing.registry import Mixer
from tokenmix.models.moe import MoEFeedForward


class Embeddings(nn.Module):
    """word + position + type -> LayerNorm -> Linear(d_emb -> d_model) -> dropout (official order:
    the norm comes before the projection): input_ids [batch, seq] -> [batch, seq, hidden]. Positions
    are implicit 0..L-1."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d_emb, std = config.embedding_size, config.initializer_range
        assert d_emb is not None  # ModelConfig.__post_init__ fills it in
        self.word = nn.Embedding(config.vocab_size, d_emb)
        self.position = nn.Embedding(config.max_position_embeddings, d_emb)
        self.token_type = nn.Embedding(config.type_vocab_size, d_emb)
        for table in (self.word, self.position, self.token_type):
            nn.init.normal_(table.weight, 0.0, std)
        self.norm = nn.LayerNorm(d_emb, eps=config.layer_norm_eps)
        self.projection = nn.Linear(d_emb, config.hidden_size)
        lecun_normal_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        x = self.word(input_ids) + self.position.weight[: input_ids.shape[1]]
        if token_type_ids is None:
            x = x + self.token_type.weight[0]
        else:
            x = x + self.token_type(token_type_ids)
        return self.dropout(self.projection(self.norm(x)))


class FeedForward(nn.Module):
    """Linear(d -> d_ff) -> GELU -> Linear(d_ff -> d) -> dropout, [batch, seq, hidden] -> same shape;
    the official init draws the first bias from N(0, 0.02) and zeroes the second."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        std = config.initializer_range
        self.intermediate = normal_linear(config.hidden_size, config.intermediate_size, std, bias_std=std)
        self.output = normal_linear(config.intermediate_size, config.hidden_size, std)
        self.activation = ACTIVATION_FUNCTIONS[config.activation]
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.output(self.activation(self.intermediate(x))))


class EncoderBlock(nn.Module):
    """Post-LN block (official): y = LN(x + Mix(x)); out = LN(y + FF(y)), x [batch, seq, hidden] -> same
    shape. With ``norm_position="pre"``: y = x + Mix(LN(x)); out = y + FF(LN(y)) (the encoder then adds
    one final LayerNorm), which keeps an unnormalised residual path (a deviation from the papers, for short budgets).
    No dropout on the mixing output. The feed-forward is dense or, in MoE layers, a mixture of experts
    that also returns router statistics (``forward`` returns ``(out, stats or None)``)."""

    def __init__(self, config: ModelConfig, mixer: type[Mixer], index: int, moe: bool = False) -> None:
        super().__init__()
        self.mixing = mixer(config)
        self.mixing_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ff = MoEFeedForward(config, index) if moe else FeedForward(config)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # pad_mixing="zero": padded positions contribute nothing to the mix (a beyond-the-paper option).
        self.zero_padding = config.pad_mixing == "zero" and not self.mixing.uses_padding_mask
        self.moe = moe
        self.pre_norm = config.norm_position == "pre"

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> tuple[torch.Tensor, dict | None]:
        mix_input = self.mixing_norm(x) if self.pre_norm else x
        if self.zero_padding and padding_mask is not None:
            mix_input = mix_input * padding_mask.unsqueeze(-1).to(x.dtype)
        x = x + self.mixing(mix_input, padding_mask)
        if not self.pre_norm:
            x = self.mixing_norm(x)
        ff_input = self.output_norm(x) if self.pre_norm else x
        if self.moe:
            ff, stats = self.ff(ff_input, padding_mask)
        else:
            ff, stats = self.ff(ff_input), None
        return (x + ff if self.pre_norm else self.output_norm(x + ff)), stats


class Pooler(nn.Module):
    """tanh(Linear(h[:, 0])), [batch, seq, hidden] -> [batch, hidden]: the [CLS] summary used by NSP
    and classification heads."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = normal_linear(config.hidden_size, config.hidden_size, config.initializer_range)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))
