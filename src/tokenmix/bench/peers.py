"""Hugging Face ``transformers`` peers of the same size, for ``tokenmix bench speed --compare hf``.

``hf_fnet`` is ``FNetForPreTraining`` / ``FNetForSequenceClassification`` / ``FNetModel`` and
``hf_bert`` the BERT classes with SDPA attention, built from the tokenmix config of the same preset:
same hidden size, layers, heads, feed-forward width, vocabulary, maximum length, token types,
LayerNorm epsilon and dropout (hidden dropout and attention-probability dropout, both on while
training, as in ours). The activation is ``gelu_pytorch_tanh``, the same function as our tanh-GELU
and the fastest kernel transformers has for it (its FNet default ``gelu_new`` computes the same
values op by op, slower), so the peers are measured at their best. Hugging Face FNet uses
``torch.fft.fftn`` (``use_tpu_fourier_optimizations=False``).

They see the same batch: our ``masked_positions`` / ``masked_labels`` become the ``labels`` tensor
transformers expects (-100 everywhere else), ``next_sentence_labels`` its ``next_sentence_label``.
What each library then computes is its own: transformers projects every position onto the
vocabulary and ignores the unmasked ones in the loss; tokenmix gathers the masked positions first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tokenmix.bench.configs import PEERS
from tokenmix.models.config import ModelConfig

HEAD_SUFFIX = {"pretrain": "ForPreTraining", "train": "ForSequenceClassification", "inference": "Model"}


def require_transformers() -> Any:
    try:
        import transformers  # noqa: PLC0415 (optional, not a dependency: only --compare hf needs it)
    except ImportError:
        raise ValueError("--compare hf needs Hugging Face transformers: pip install transformers") from None
    return transformers


def hf_config(name: str, config: ModelConfig) -> Any:
    """The transformers config of the same size and regularisation as ``config``."""
    transformers = require_transformers()
    prefix = PEERS[name][1]
    common = dict(vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
                  intermediate_size=config.intermediate_size, hidden_act="gelu_pytorch_tanh",
                  hidden_dropout_prob=config.dropout, max_position_embeddings=config.max_position_embeddings,
                  type_vocab_size=config.type_vocab_size, initializer_range=config.initializer_range,
                  layer_norm_eps=config.layer_norm_eps, pad_token_id=config.pad_token_id, num_labels=2)
    if prefix == "Bert":
        return transformers.BertConfig(num_attention_heads=config.num_heads,
                                       attention_probs_dropout_prob=config.attention_dropout,
                                       attn_implementation="sdpa", **common)
    return transformers.FNetConfig(use_tpu_fourier_optimizations=False, **common)


def hf_batch(mode: str, batch: dict[str, Any]) -> dict[str, Any]:
    """Our benchmark batch (see ``speed.make_batch``) in transformers' argument names."""
    out = {"input_ids": batch["input_ids"]}
    if mode == "train":
        out["labels"] = batch["labels"]
    elif mode == "pretrain":
        labels = torch.full_like(batch["input_ids"], -100)
        out["labels"] = labels.scatter(1, batch["masked_positions"], batch["masked_labels"])
        out["next_sentence_label"] = batch["next_sentence_labels"]
    return out


def build_peer(name: str, config: ModelConfig, mode: str, batch: dict[str, Any]
               ) -> tuple[Any, Callable[[Any], Any]]:
    """(model, forward): ``forward(module)`` runs the peer on ``batch`` and returns its output."""
    transformers = require_transformers()
    model = getattr(transformers, PEERS[name][1] + HEAD_SUFFIX[mode])(hf_config(name, config))
    inputs = hf_batch(mode, batch)
    return model, lambda module: module(**inputs)
