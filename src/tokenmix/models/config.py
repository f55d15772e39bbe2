"""Typed model configuration and size presets.

One dataclass describes every encoder of the family; a *variant* (``fnet``, ``bert``...) is just a set
of field values registered in :mod:`tokenmix.models.registry`, and a *preset* fixes the sizes. Everything is
overridable, and the config round-trips through ``config.json`` so a saved model rebuilds itself.
This module imports no torch, so ``import tokenmix`` and ``tokenmix --help`` stay fast.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any

FOURIER_IMPLS = ("auto", "fft", "matmul")
PAD_MIXING = ("official", "zero")
NORM_POSITIONS = ("post", "pre")
LAYOUTS = ("top", "bottom", "middle", "mixed")
ROUTERS = ("experts_choose", "tokens_choose")
HEADS = ("none", "pretraining", "classification", "regression", "lra_classification", "lra_two_tower")
POOLINGS = ("cls", "mean")
ACTIVATIONS = ("gelu_tanh", "gelu")  # names; the functions are models.activations.ACTIVATION_FUNCTIONS
ATTENTION = "attention"  # the mixing of hybrid attention layers (num_attention_layers, num_heads)

# Sizes: (hidden, layers, heads, feed-forward). The FNet paper's Base/Large plus the small sizes we
# train on laptops; `tiny` exists for tests and the demo.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256),
    "mini": dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
    "small": dict(hidden_size=512, num_layers=4, num_heads=8, intermediate_size=2048),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096),
}


def _meta(help_text: str, **extra: Any) -> dict[str, Any]:
    return {"help": help_text, **extra}


def _mixing_names() -> list[str]:
    """The names registered with ``@register_mixer("name")`` in :mod:`tokenmix.models.mixing`, read from
    its source files rather than imported, so that this module stays torch-free (the registry itself,
    :func:`tokenmix.models.mixing.registry.list_mixers`, imports the mixers; a test checks both agree)."""
    registration = re.compile(r"""^@register_mixer\(["'](\w+)["']\)""", re.MULTILINE)
    names = []
    with os.scandir(os.path.join(os.path.dirname(__file__), "mixing")) as entries:  # os: pathlib costs 3 ms to import
        for entry in entries:
            if entry.name.endswith(".py"):
                with open(entry.path, encoding="utf-8") as source:
                    names += registration.findall(source.read())
    return sorted(names)


@dataclass
class ModelConfig:
    """Architecture of one encoder (+ optional head). Field names follow the FNet paper/official code."""

    variant: str = field(default="fnet", metadata=_meta("registered variant name (informational; set by create_model)"))
    mixing: str = field(default="fourier", metadata=_meta(f"token-mixing sublayer: {', '.join(_mixing_names())}"))
    vocab_size: int = field(default=32000, metadata=_meta("vocabulary size"))
    hidden_size: int = field(default=256, metadata=_meta("model width d_model"))
    embedding_size: int | None = field(default=None, metadata=_meta("embedding width d_emb (None = hidden_size)"))
    num_layers: int = field(default=4, metadata=_meta("number of encoder blocks"))
    num_heads: int = field(default=4, metadata=_meta("attention heads (attention layers only)"))
    intermediate_size: int = field(default=1024, metadata=_meta("feed-forward width d_ff"))
    max_position_embeddings: int = field(default=512, metadata=_meta("maximum sequence length"))
    type_vocab_size: int = field(default=4, metadata=_meta("number of token types (segments)"))
    dropout: float = field(default=0.1, metadata=_meta("dropout after the embedding projection and feed-forward"))
    attention_dropout: float = field(default=0.1, metadata=_meta("dropout on attention probabilities"))
    layer_norm_eps: float = field(default=1e-12, metadata=_meta("LayerNorm epsilon (official: 1e-12)"))
    initializer_range: float = field(default=0.02, metadata=_meta("std of the normal initialiser"))
    activation: str = field(default="gelu_tanh", metadata=_meta("feed-forward activation: gelu_tanh (official) or gelu"))
    pad_token_id: int = field(default=0, metadata=_meta("id of the padding token"))
    num_attention_layers: int = field(default=0, metadata=_meta("mixing sublayers replaced by self-attention (hybrid)"))
    attention_layout: str = field(default="top", metadata=_meta("where attention layers go: top, bottom, middle, mixed"))
    fourier_impl: str = field(default="auto", metadata=_meta("Fourier transform implementation: auto, fft, matmul"))
    pad_mixing: str = field(default="official", metadata=_meta("official: padding is mixed like any token; zero: padded positions are zeroed before each mixing layer"))
    norm_position: str = field(default="post", metadata=_meta("post: LayerNorm after each residual sum (official); pre: LayerNorm before the mixing and feed-forward sublayers and once after the last block (a deviation from the papers, for short budgets; README 'Budget recipe')"))
    zero_biases: bool = field(default=False, metadata=_meta("initialise every bias at zero (Sparse Mixers) instead of the FNet code's N(0, 0.02) biases"))
    # Mixture-of-experts feed-forward (Sparse Mixers); inactive while num_moe_layers == 0.
    num_moe_layers: int = field(default=0, metadata=_meta("feed-forward sublayers replaced by mixture-of-experts layers"))
    moe_layout: str = field(default="middle", metadata=_meta("where MoE layers go: top, bottom, middle, mixed"))
    num_experts: int = field(default=16, metadata=_meta("experts per MoE layer"))
    expert_intermediate_size: int | None = field(default=None, metadata=_meta("feed-forward width of each expert (None = intermediate_size)"))
    expert_dropout: float = field(default=0.1, metadata=_meta("dropout on expert outputs (official: 0.1 pretraining, 0.2 fine-tuning)"))
    router: str = field(default="experts_choose", metadata=_meta("routing: experts_choose (official Sparse Mixer) or tokens_choose (top-k)"))
    num_selected_experts: int = field(default=1, metadata=_meta("k of tokens-choose top-k routing (1 or 2)"))
    batch_prioritized_routing: bool = field(default=True, metadata=_meta("tokens-choose: most confident tokens claim capacity first"))
    train_capacity_factor: float = field(default=1.0, metadata=_meta("expert capacity factor while training"))
    eval_capacity_factor: float = field(default=1.0, metadata=_meta("expert capacity factor in eval mode"))
    min_expert_capacity: int = field(default=4, metadata=_meta("lower bound on tokens per expert per group"))
    max_group_size: int = field(default=4096, metadata=_meta("tokens routed together (routing is per group)"))
    router_jitter: float = field(default=0.0, metadata=_meta("multiplicative uniform noise on router inputs while training"))
    aux_loss_factor: float = field(default=0.01, metadata=_meta("weight of the load-balancing loss (tokens-choose)"))
    router_z_loss_factor: float = field(default=1e-4, metadata=_meta("weight of the router z-loss"))
    head: str = field(default="none", metadata=_meta(f"task head: {', '.join(HEADS)}"))
    num_labels: int = field(default=2, metadata=_meta("classes of the classification head"))
    # The LRA heads only (tokenmix.models.heads): what they classify, and the task they were trained on.
    pooling: str = field(default="cls", metadata=_meta("LRA heads: classify the first position (cls) or the mean over real tokens (mean)"))
    lra_task: str = field(default="", metadata=_meta("LRA task the model was trained on (informational; set by `lra run`, checked by `lra eval`)"))

    def __post_init__(self) -> None:
        if self.embedding_size is None:
            self.embedding_size = self.hidden_size
        if self.expert_intermediate_size is None:
            self.expert_intermediate_size = self.intermediate_size
        if self.head == "regression":
            self.num_labels = 1
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the bad field and the accepted values."""
        choices = {
            "fourier_impl": FOURIER_IMPLS,
            "pad_mixing": PAD_MIXING,
            "norm_position": NORM_POSITIONS,
            "attention_layout": LAYOUTS,
            "moe_layout": LAYOUTS,
            "router": ROUTERS,
            "head": HEADS,
            "pooling": POOLINGS,
            "activation": ACTIVATIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not valid; choose one of {', '.join(allowed)}")
        for name in ("vocab_size", "hidden_size", "embedding_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size", "num_labels", "num_experts",
                     "expert_intermediate_size", "min_expert_capacity", "max_group_size", "num_selected_experts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "attention_dropout", "expert_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("num_attention_layers", "num_moe_layers"):
            if not 0 <= getattr(self, name) <= self.num_layers:
                raise ValueError(f"{name}={getattr(self, name)} must be between 0 and num_layers={self.num_layers}")
        for name in ("train_capacity_factor", "eval_capacity_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r} (1.0 = Sparse Mixer, 0.5 = Fast Sparse Mixer)")
        if self.num_selected_experts > self.num_experts:
            raise ValueError(f"num_selected_experts={self.num_selected_experts} exceeds num_experts={self.num_experts}")
        if self.router_jitter < 0 or self.aux_loss_factor < 0 or self.router_z_loss_factor < 0:
            raise ValueError("router_jitter, aux_loss_factor and router_z_loss_factor must be >= 0")
        if self.uses_attention and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id={self.pad_token_id} must be a token id below vocab_size={self.vocab_size}")

    @property
    def uses_attention(self) -> bool:
        """Some block is self-attention (so hidden_size must split into num_heads)."""
        return self.mixing == ATTENTION or self.num_attention_layers > 0

    def attention_layers(self) -> frozenset[int]:
        """Indices of blocks whose mixing sublayer is self-attention (official hybrid layouts)."""
        if self.mixing == ATTENTION:
            return frozenset(range(self.num_layers))
        return layer_indices(self.num_layers, self.num_attention_layers, self.attention_layout)

    def layer_mixing(self) -> tuple[str, ...]:
        """The mixing name of each block, first to last: ``mixing``, or attention in hybrid layers.
        (What a mixing implies, e.g. a fixed input length, is a trait of its class: see
        :func:`tokenmix.models.mixing.registry.is_length_dependent`.)"""
        attention = self.attention_layers()
        return tuple(ATTENTION if i in attention else self.mixing for i in range(self.num_layers))

    def moe_layers(self) -> frozenset[int]:
        """Indices of blocks whose feed-forward is a mixture of experts."""
        return layer_indices(self.num_layers, self.num_moe_layers, self.moe_layout)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown model config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with some fields changed (unknown names raise ValueError)."""
        return type(self).from_dict({**self.to_dict(), **overrides})


def layer_indices(n: int, k: int, layout: str) -> frozenset[int]:
    """The k of n layers a layout replaces, by the official formulas (f_net and sparse_mixers)."""
    if k == 0:
        return frozenset()
    rule = {
        "top": lambda i: i >= n - k,
        "bottom": lambda i: i < k,
        "middle": lambda i: n - k <= 2 * i < n + k,
        "mixed": lambda i: i % max(n // k, 1) == 0,
    }[layout]
    return frozenset(i for i in range(n) if rule(i))


def preset_sizes(preset: str) -> dict[str, int]:
    try:
        return dict(PRESETS[preset])
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}") from None


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``("dropout=0.0", "fourier_impl=matmul")`` -> typed ModelConfig overrides (CLI ``--override``)."""
    hints = typing.get_type_hints(ModelConfig)
    overrides: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in hints:
            raise ValueError(f"bad override {item!r}: expected field=value with a ModelConfig field "
                             f"({', '.join(sorted(hints))})")
        args = typing.get_args(hints[name])
        if type(None) in args and text.strip().lower() in ("none", "null"):
            overrides[name] = None
            continue
        kind = next(k for k in args if k is not type(None)) if args else hints[name]
        try:
            overrides[name] = {"true": True, "false": False}[text.strip().lower()] if kind is bool else kind(text.strip())
        except (KeyError, ValueError):
            raise ValueError(f"bad override {item!r}: {name} expects a {kind.__name__}") from None
    return overrides
