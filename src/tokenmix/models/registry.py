"""The one place where model variants are named (timm-style registry).

A variant is a named bundle of :class:`~tokenmix.models.config.ModelConfig` fields. Adding a variant is one
``register_variant`` call here (plus, for a new kind of mixing, one file in :mod:`tokenmix.models.mixing`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from tokenmix.models.config import ModelConfig, preset_sizes


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    paper: str
    fields: dict[str, Any] = field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-preset overrides of this variant


_VARIANTS: dict[str, Variant] = {}


def register_variant(name: str, description: str, paper: str = "FNet",
                     presets: dict[str, dict[str, Any]] | None = None, **fields: Any) -> Variant:
    if name in _VARIANTS:
        raise ValueError(f"variant {name!r} is already registered")
    _VARIANTS[name] = variant = Variant(name, description, paper, fields, presets or {})
    return variant


register_variant("fnet", "FNet: real part of a 2D DFT over sequence and hidden", mixing="fourier")
register_variant("linear", "Linear: learned sequence and hidden mixing matrices", mixing="linear")
register_variant("random", "Random: fixed random mixing matrices (not trained, saved)", mixing="random")
register_variant("ff_only", "FF-only: no token mixing, feed-forward only", mixing="identity")
register_variant("hybrid", "FNet-Hybrid: Fourier mixing, self-attention in the last 2 layers",
                 mixing="fourier", num_attention_layers=2, attention_layout="top")
register_variant("bert", "BERT: multi-head self-attention (scaled_dot_product_attention)", mixing="attention")

# Sparse Mixers (official sparse_mixers/configs/base.py): linear mixing, attention in the top 4 layers,
# experts-choose MoE in the middle 4, all biases zero-initialised. Base 512/14 layers, Small 8 layers;
# mini/tiny are our CPU-sized versions.
_SPARSE_MIXER = dict(
    mixing="linear", num_attention_layers=4, attention_layout="top", num_moe_layers=4, moe_layout="middle",
    num_experts=16, router="experts_choose", zero_biases=True,
)
_SPARSE_MIXER_PRESETS = {
    "tiny": dict(hidden_size=64, num_layers=4, num_heads=2, intermediate_size=256, num_attention_layers=1,
                 num_moe_layers=2, num_experts=4),
    "mini": dict(hidden_size=256, num_layers=6, num_heads=4, intermediate_size=1024, num_attention_layers=2,
                 num_moe_layers=2, num_experts=8),
    "small": dict(hidden_size=512, num_layers=8, num_heads=8, intermediate_size=2048),
    "base": dict(hidden_size=512, num_layers=14, num_heads=8, intermediate_size=2048),
}
register_variant("sparse_mixer", "Sparse Mixer: linear mixing, top attention, experts-choose MoE (capacity 1.0)",
                 paper="Sparse Mixers", presets=_SPARSE_MIXER_PRESETS, **_SPARSE_MIXER,
                 train_capacity_factor=1.0, eval_capacity_factor=1.0)
register_variant("fast_sparse_mixer", "Fast Sparse Mixer: Sparse Mixer with expert capacity factor 0.5",
                 paper="Sparse Mixers", presets=_SPARSE_MIXER_PRESETS, **_SPARSE_MIXER,
                 train_capacity_factor=0.5, eval_capacity_factor=0.5)


def get_variant(name: str) -> Variant:
    try:
        return _VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(_VARIANTS)} (see `tokenmix models`)") from None


def list_models(pattern: str = "*") -> list[str]:
    """Registered variant names matching a shell-style pattern, e.g. ``list_models("f*")``."""
    return [name for name in _VARIANTS if fnmatch.fnmatch(name, pattern)]


def make_config(name: str, preset: str = "mini", **overrides: Any) -> ModelConfig:
    """Config of variant ``name`` at size ``preset``; keyword overrides win over both."""
    variant = get_variant(name)
    merged = {**preset_sizes(preset), **variant.fields, **variant.presets.get(preset, {}), "variant": name, **overrides}
    return ModelConfig.from_dict(merged)
