"""Build, create and load models: the one module that knows every model class.

Importing :mod:`.heads` registers the head classes on
:class:`~tokenmix.models.encoder.TokenMixPreTrainedModel`, so ``config.head`` picks the class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenmix.io.checkpoint import load_model
from tokenmix.io.huggingface import local_model_dir
from tokenmix.models import heads  # noqa: F401  (registers the head classes)
from tokenmix.models.config import ModelConfig
from tokenmix.models.encoder import TokenMixPreTrainedModel
from tokenmix.models.registry import make_config


def build_model(config: ModelConfig) -> TokenMixPreTrainedModel:
    """A freshly initialised model of the class that implements ``config.head``."""
    return TokenMixPreTrainedModel.build(config)


def create_model(name: str, preset: str = "mini", **overrides: Any) -> TokenMixPreTrainedModel:
    """Build a freshly initialised model, e.g. ``create_model("fnet", "mini", head="pretraining")``.

    ``overrides`` are :class:`ModelConfig` fields (``head``, ``num_labels``, ``max_position_embeddings``,
    ``fourier_impl``...). The head decides the class: bare encoder, MLM+NSP, classification, regression.
    """
    return build_model(make_config(name, preset, **overrides))


def load_pretrained(path: str | Path, variant: str | None = None, **overrides: Any) -> TokenMixPreTrainedModel:
    """Load a model saved by ``save_pretrained``, a run directory of the training pipelines, or a Hugging
    Face Hub id of an FNet model (``"google/fnet-base"``: downloaded and converted once, then cached).

    ``variant`` checks the saved variant (e.g. refuse a BERT checkpoint where FNet was expected).
    ``overrides`` change config fields; ``head=`` swaps the task head: the encoder is loaded and a new
    head is initialised (e.g. a pretraining checkpoint into ``head="classification"``).
    """
    return load_model(local_model_dir(path), build_model, variant, **overrides)
