"""LRA classifiers: any tokenmix encoder + pooling + the LRA classifier head, and the two-tower model.

The head is the LRA code's (``common_layers.classifier_head``): pool (the first position, where the
CLS token is, or the mean over real tokens), then Dense(mlp_dim) -> ReLU -> Dense(classes), with
``mlp_dim`` = the encoder's feed-forward width as in the LRA configs. Retrieval encodes both documents
with the same encoder and classifies ``[u, v, u * v, u - v]`` with Dense(mlp) -> ReLU ->
Dense(mlp / 2) -> ReLU -> Dense(classes) (``classifier_head_dual`` with NLI interaction).

A model folder is the usual ``config.json`` + ``model.safetensors`` plus ``lra.json`` (task, pooling,
classes), so :func:`load_lra_model` rebuilds it exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tokenmix.io.checkpoint import find_model_dir, load_weights, read_config, read_safetensors, save_weights
from tokenmix.io.files import write_json
from tokenmix.models.config import ModelConfig
from tokenmix.models.heads import ClassificationOutput

HEAD_NAME = "lra.json"


@dataclass(frozen=True)
class HeadConfig:
    task: str
    num_classes: int
    pooling: str  # "cls" or "mean"
    dual: bool = False


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """[B, L, d] -> [B, d]: the first position (CLS) or the mean over real (unpadded) tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def _mlp(*sizes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class LRAClassifier(nn.Module):
    """``model(input_ids, attention_mask, labels=None, input_ids2=None, attention_mask2=None)`` ->
    :class:`~tokenmix.models.heads.ClassificationOutput` (``loss`` when labels are given)."""

    def __init__(self, config: ModelConfig, head: HeadConfig, encoder: nn.Module | None = None) -> None:
        super().__init__()
        from tokenmix.models.encoder import Encoder

        self.config, self.head_config = config, head
        self.encoder = encoder if encoder is not None else Encoder(config)
        d, mlp = config.hidden_size, config.intermediate_size
        self.classifier = _mlp(4 * d, mlp, max(mlp // 2, 1), head.num_classes) if head.dual else _mlp(d, mlp, head.num_classes)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.encoder(input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out
        return pool(hidden, attention_mask, self.head_config.pooling), getattr(out, "aux_loss", None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                input_ids2: torch.Tensor | None = None, attention_mask2: torch.Tensor | None = None) -> ClassificationOutput:
        u, aux = self.encode(input_ids, attention_mask)
        if self.head_config.dual:
            if input_ids2 is None:
                raise ValueError("the two-tower retrieval model needs input_ids2 (the second document)")
            v, aux2 = self.encode(input_ids2, attention_mask2)
            aux = aux2 if aux is None else aux if aux2 is None else aux + aux2
            features = torch.cat([u, v, u * v, u - v], dim=-1)
        else:
            features = u
        logits = self.classifier(features)
        loss = None if labels is None else F.cross_entropy(logits.float(), labels.long())
        if loss is not None and aux is not None:
            loss = loss + aux
        return ClassificationOutput(last_hidden_state=features, pooler_output=features, aux_loss=aux, loss=loss, logits=logits)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = save_weights(self.config, self.state_dict(), directory)
        write_json(directory / HEAD_NAME, asdict(self.head_config))
        return directory


def build_lra_model(name: str, preset: str, head: HeadConfig, overrides: dict[str, Any],
                    seq_len: int | None = None) -> LRAClassifier:
    """A fresh classifier for variant ``name`` with the task's config (see :mod:`.tasks`), built for
    ``seq_len`` content tokens (default: the task's length)."""
    from dataclasses import replace

    from tokenmix.lra.tasks import get_task, model_overrides
    from tokenmix.models.registry import make_config

    task = get_task(head.task)
    task = replace(task, seq_len=seq_len) if seq_len else task
    preset, fields = model_overrides(task, preset, head.pooling, overrides)
    return LRAClassifier(make_config(name, preset, **fields), head)


def load_lra_model(path: str | Path) -> LRAClassifier:
    """Rebuild a classifier saved by :meth:`LRAClassifier.save_pretrained` (a run directory works too:
    its ``best/`` model is taken)."""
    directory = find_model_dir(path)
    head_file = directory / HEAD_NAME
    if not head_file.is_file():
        raise ValueError(f"{directory} holds no {HEAD_NAME}: it is not an LRA classifier (train one with `tokenmix lra run`)")
    try:
        head = HeadConfig(**json.loads(head_file.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{head_file} is not a valid LRA head description ({err}); re-save the model") from None
    model = LRAClassifier(read_config(directory), head)
    load_weights(model, read_safetensors(directory / "model.safetensors"), str(directory))
    return model
