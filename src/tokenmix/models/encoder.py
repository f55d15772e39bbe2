"""The encoder shared by every variant, its output type, input checks, and the model base class."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from tokenmix.io.checkpoint import load_model, save_weights
from tokenmix.models.config import ModelConfig
from tokenmix.models.layers import Embeddings, EncoderBlock, Pooler
from tokenmix.models.mixing.registry import layer_mixers
from tokenmix.models.tracing import is_tracing


@dataclass
class EncoderOutput:
    """Names as in Hugging Face transformers so users' habits carry over."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    # Mixture-of-experts models only: weighted auxiliary losses summed over MoE layers (the heads add
    # it to their loss) and router diagnostics (see :func:`summarize_router_stats`).
    aux_loss: torch.Tensor | None = None
    router_stats: dict[str, torch.Tensor] | None = None


def _check_ids(name: str, ids: torch.Tensor, shape: torch.Size | None, limit: int, limit_name: str) -> None:
    if not isinstance(ids, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(ids).__name__}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got dtype {ids.dtype}; convert with .long()")
    if shape is not None and ids.shape != shape:
        raise ValueError(f"{name} has shape {tuple(ids.shape)} but input_ids has shape {tuple(shape)}; they must match")
    if ids.numel() and not is_tracing():
        low, high = (int(v) for v in torch.aminmax(ids))
        if low < 0 or high >= limit:
            bad = high if high >= limit else low
            raise ValueError(f"{name} contains {bad}, outside [0, {limit}) set by {limit_name}={limit}; "
                             f"the tokenizer/data and the model config disagree")


def register_output(cls: type) -> type:
    """Make an output dataclass a pytree node, so ``torch.export`` / ``torch.compile`` can trace models
    that return it (as transformers does for its ModelOutput)."""
    torch.export.register_dataclass(cls, serialized_type_name=f"tokenmix.{cls.__name__}")
    return cls


register_output(EncoderOutput)


def check_inputs(config: ModelConfig, input_ids: Any, token_type_ids: Any, attention_mask: Any) -> None:
    """Raise a ValueError that names the problem and the fix for any malformed model input."""
    if isinstance(input_ids, torch.Tensor) and input_ids.dim() != 2:
        hint = "; add a batch axis with input_ids.unsqueeze(0)" if input_ids.dim() == 1 else ""
        raise ValueError(f"input_ids must have shape [batch, seq_len], got {tuple(input_ids.shape)}{hint}")
    _check_ids("input_ids", input_ids, None, config.vocab_size, "vocab_size")
    seq_len = input_ids.shape[1]
    if input_ids.shape[0] == 0:  # the FFT and attention kernels fail on it with messages that name neither
        raise ValueError(f"input_ids is an empty batch {list(input_ids.shape)}; pass at least one example")
    if seq_len == 0:
        raise ValueError("input_ids has zero length; every example needs at least one token")
    if seq_len > config.max_position_embeddings:
        raise ValueError(f"sequence length {seq_len} exceeds max_position_embeddings={config.max_position_embeddings}; "
                         f"truncate the input or build the model with max_position_embeddings={seq_len}")
    if token_type_ids is not None:
        _check_ids("token_type_ids", token_type_ids, input_ids.shape, config.type_vocab_size, "type_vocab_size")
    if attention_mask is not None and (not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape):
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(f"attention_mask must be a tensor of shape {tuple(input_ids.shape)} (1 = token, 0 = padding), got {got}")


def padding_mask_from(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Bool [B, L] mask (True = real token), or None when nothing is padded so that fused attention
    kernels stay available. An example made only of padding is rejected: attention would be NaN."""
    if attention_mask is None:
        return None
    mask = attention_mask.bool()
    if is_tracing():
        return mask
    real_per_row = mask.sum(dim=1)
    fewest = int(real_per_row.min())
    if fewest == 0:
        raise ValueError("attention_mask has a row with no real token (all zeros); drop empty examples")
    return None if fewest == mask.shape[1] else mask


class Encoder(nn.Module):
    """Embeddings -> N post-LN blocks (mixing per the config's variant and hybrid layout) -> pooler:
    input_ids [batch, seq] -> last_hidden_state [batch, seq, hidden] and pooler_output [batch, hidden].
    Pre-LN blocks (``norm_position="pre"``) leave their output unnormalised, so a final LayerNorm
    (``final_norm``) follows the last one; post-LN encoders have none, as officially."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        mixers, moe = layer_mixers(config), config.moe_layers()
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderBlock(config, mixer, i, moe=i in moe) for i, mixer in enumerate(mixers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) \
            if config.norm_position == "pre" else None
        self.pooler = Pooler(config)
        self.needs_padding_mask = (config.pad_mixing == "zero" or bool(moe)
                                   or any(mixer.uses_padding_mask for mixer in mixers))

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> EncoderOutput:
        check_inputs(self.config, input_ids, token_type_ids, attention_mask)
        padding_mask = padding_mask_from(attention_mask) if self.needs_padding_mask else None
        x = self.embeddings(input_ids, token_type_ids)
        hidden_states = [x] if output_hidden_states else None
        router_stats = []
        for layer in self.layers:
            x, stats = layer(x, padding_mask)
            if stats is not None:
                router_stats.append(stats)
            if hidden_states is not None:
                hidden_states.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
            if hidden_states is not None:
                hidden_states[-1] = x
        aux_loss, summary = summarize_router_stats(self.config, router_stats) if router_stats else (None, None)
        return EncoderOutput(x, self.pooler(x), tuple(hidden_states) if hidden_states is not None else None,
                             aux_loss, summary)


def summarize_router_stats(config: ModelConfig, per_layer: list[dict[str, torch.Tensor]]
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Official combination: aux_loss_factor * sum of load-balancing losses + router_z_loss_factor *
    sum of z-losses over MoE layers. Diagnostics: the loss sums, the mean fraction of real tokens no
    expert took, and each layer's per-expert capacity usage ([moe_layers, experts])."""
    balance = torch.stack([s["load_balancing_loss"] for s in per_layer]).sum()
    z_loss = torch.stack([s["router_z_loss"] for s in per_layer]).sum()
    summary = {
        "load_balancing_loss": balance, "router_z_loss": z_loss,
        "fraction_dropped": torch.stack([s["fraction_dropped"] for s in per_layer]).mean(),
        "expert_usage": torch.stack([s["expert_usage"] for s in per_layer]),
    }
    return config.aux_loss_factor * balance + config.router_z_loss_factor * z_loss, summary


class TokenMixPreTrainedModel(nn.Module):
    """Base of every model: holds ``config`` and ``encoder``; saves/loads itself (config.json +
    model.safetensors). Subclasses declare the ``head`` name they implement."""

    head: ClassVar[str]
    _classes: ClassVar[dict[str, type[TokenMixPreTrainedModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        TokenMixPreTrainedModel._classes[cls.head] = cls

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.head != self.head:
            raise ValueError(f"{type(self).__name__} needs head={self.head!r}, the config says {config.head!r}")
        self.config = config
        self.encoder = Encoder(config)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @staticmethod
    def build(config: ModelConfig) -> TokenMixPreTrainedModel:
        """A freshly initialised model of the class registered for ``config.head`` (that class's module
        must have been imported: :func:`tokenmix.models.factory.build_model` imports them all)."""
        try:
            model_class = TokenMixPreTrainedModel._classes[config.head]
        except KeyError:
            raise ValueError(f"no model class for head={config.head!r}; import tokenmix.models.factory "
                             f"(or the module that defines it) first") from None
        model = model_class(config)
        if config.zero_biases:
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    if name.rsplit(".", 1)[-1].startswith("bias"):
                        parameter.zero_()
        return model

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (atomically) into ``directory``."""
        return save_weights(self.config, self.state_dict(), directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **overrides: Any) -> TokenMixPreTrainedModel:
        """Load a saved model into this class (its head; another saved head is swapped for a new one)."""
        return load_model(directory, TokenMixPreTrainedModel.build, **{"head": cls.head, **overrides})


class TokenMixModel(TokenMixPreTrainedModel):
    """The bare encoder: ``model(input_ids, token_type_ids, attention_mask)`` -> :class:`EncoderOutput`."""

    head = "none"

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, output_hidden_states: bool = False) -> EncoderOutput:
        return self.encoder(input_ids, token_type_ids, attention_mask, output_hidden_states)
