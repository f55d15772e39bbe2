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

__version__ = "0.1.0"

from .config import PRESETS, ModelConfig  # noqa: E402
from .registry import create_model, get_variant, list_models, make_config, register_variant  # noqa: E402

_LAZY = {
    "load_pretrained": "checkpoint",
    "save_pretrained": "checkpoint",
    "build_model": "modeling",
    "EncoderOutput": "modeling",
    "TokenMixPreTrainedModel": "modeling",
    "TokenMixModel": "modeling",
    "TokenMixForPreTraining": "heads",
    "TokenMixForSequenceClassification": "heads",
    "TokenMixForSequenceRegression": "heads",
    "PreTrainingOutput": "heads",
    "ClassificationOutput": "heads",
    "fourier_transform": "mixing.fourier",
    "register_mixer": "mixing",
    "list_mixers": "mixing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'tokenmix' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["PRESETS", "ModelConfig", "create_model", "get_variant", "list_models", "make_config",
           "register_variant", "__version__", *_LAZY]
