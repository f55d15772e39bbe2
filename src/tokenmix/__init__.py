"""tokenmix: token-mixing encoders (FNet and its family) in PyTorch.

    >>> import tokenmix
    >>> model = tokenmix.create_model("fnet", preset="mini")
    >>> out = model(input_ids)                      # out.last_hidden_state, out.pooler_output

The package imports torch only when a model-related name is first used, so ``import tokenmix`` and
``tokenmix --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from tokenmix.models.config import PRESETS, ModelConfig
from tokenmix.models.registry import get_variant, list_models, make_config, register_variant
from tokenmix.version import __version__

_LAZY = {
    "create_model": "models.factory",
    "load_pretrained": "models.factory",
    "save_pretrained": "io.checkpoint",
    "build_model": "models.factory",
    "EncoderOutput": "models.encoder",
    "TokenMixPreTrainedModel": "models.encoder",
    "TokenMixModel": "models.encoder",
    "TokenMixForPreTraining": "models.heads",
    "TokenMixForSequenceClassification": "models.heads",
    "TokenMixForSequenceRegression": "models.heads",
    "PreTrainingOutput": "models.heads",
    "ClassificationOutput": "models.heads",
    "fourier_transform": "models.mixing.fourier",
    "register_mixer": "models.mixing.registry",
    "list_mixers": "models.mixing.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'tokenmix' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["PRESETS", "ModelConfig", "get_variant", "list_models", "make_config",
           "register_variant", "__version__", *_LAZY]
