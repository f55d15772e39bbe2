"""Task heads: MLM + NSP pretraining, sequence classification and regression.

The MLM head follows the official code: hidden states are gathered at the masked positions first,
so the vocabulary-sized projection (tied to the input embedding) is computed for ~15% of the tokens
only, never for every token. The NSP and classification heads read the tanh-pooled [CLS] vector and
have no dropout of their own (official; Hugging Face adds one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tokenmix.models.activations import ACTIVATIONS
from tokenmix.models.config import ModelConfig
from tokenmix.models.encoder import EncoderOutput, TokenMixPreTrainedModel, register_output
from tokenmix.models.initializers import normal_linear


@register_output
@dataclass
class PreTrainingOutput(EncoderOutput):
    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None  # [batch, predictions, vocab], at masked_positions only
    nsp_logits: torch.Tensor | None = None  # [batch, 2]


@register_output
@dataclass
class ClassificationOutput(EncoderOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # [batch, num_labels]; regression: [batch, 1]


class MLMHead(nn.Module):
    """Dense(d_model -> d_emb) -> GELU -> LayerNorm -> logits = h E^T + b with E the word embedding."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        std = config.initializer_range
        self.dense = normal_linear(config.hidden_size, config.embedding_size, std)
        self.activation = ACTIVATIONS[config.activation]
        self.norm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.empty(config.vocab_size).normal_(0.0, std))

    def forward(self, hidden: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return F.linear(self.norm(self.activation(self.dense(hidden))), embedding, self.bias)


def gather_positions(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """hidden [B, L, d], positions [B, P] -> [B, P, d]."""
    if positions.dim() != 2 or positions.shape[0] != hidden.shape[0]:
        raise ValueError(f"masked_positions must have shape [batch={hidden.shape[0]}, predictions], got {tuple(positions.shape)}")
    index = positions.long().unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    return torch.gather(hidden, 1, index)


def sum_losses(*losses: torch.Tensor | None) -> torch.Tensor | None:
    present = [loss for loss in losses if loss is not None]
    return sum(present[1:], present[0]) if present else None


def add_aux_loss(loss: torch.Tensor | None, out: EncoderOutput) -> torch.Tensor | None:
    """Task loss + the MoE auxiliary losses (official: added to every training objective)."""
    return loss if loss is None or out.aux_loss is None else loss + out.aux_loss


class TokenMixForPreTraining(TokenMixPreTrainedModel):
    """Encoder + MLM head (tied embedding) + NSP head; loss = MLM mean + NSP mean (official)."""

    head = "pretraining"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.mlm = MLMHead(config)
        self.nsp = normal_linear(config.hidden_size, 2, config.initializer_range, bias_std=config.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
        masked_labels: torch.Tensor | None = None,
        masked_weights: torch.Tensor | None = None,
        next_sentence_labels: torch.Tensor | None = None,
    ) -> PreTrainingOutput:
        """``masked_positions`` [B, P]: where to predict; ``masked_labels`` [B, P]: the original ids;
        ``masked_weights`` [B, P]: 1 for real predictions, 0 for padded slots (default all 1)."""
        out = self.encoder(input_ids, token_type_ids, attention_mask)
        mlm_logits = mlm_loss = nsp_loss = None
        if masked_positions is not None:
            hidden = gather_positions(out.last_hidden_state, masked_positions)
            mlm_logits = self.mlm(hidden, self.encoder.embeddings.word.weight)
        if masked_labels is not None:
            if mlm_logits is None:
                raise ValueError("masked_labels given without masked_positions; pass both")
            losses = F.cross_entropy(mlm_logits.flatten(0, 1).float(), masked_labels.flatten().long(), reduction="none")
            if masked_weights is None:
                mlm_loss = losses.mean()
            else:
                weights = masked_weights.flatten().float()
                mlm_loss = (losses * weights).sum() / weights.sum().clamp_min(1.0)
        nsp_logits = self.nsp(out.pooler_output)
        if next_sentence_labels is not None:
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_labels.long())
        loss = add_aux_loss(sum_losses(mlm_loss, nsp_loss), out)
        return PreTrainingOutput(out.last_hidden_state, out.pooler_output, None, out.aux_loss, out.router_stats,
                                 loss, mlm_loss, nsp_loss, mlm_logits, nsp_logits)


class TokenMixForSequenceClassification(TokenMixPreTrainedModel):
    """Encoder + Linear(pooled [CLS] -> num_labels); cross-entropy loss when ``labels`` are given."""

    head = "classification"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        std = config.initializer_range
        self.classifier = normal_linear(config.hidden_size, config.num_labels, std, bias_std=std)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels.long())

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ClassificationOutput:
        out = self.encoder(input_ids, token_type_ids, attention_mask)
        logits = self.classifier(out.pooler_output)
        loss = add_aux_loss(None if labels is None else self.loss(logits, labels), out)
        return ClassificationOutput(out.last_hidden_state, out.pooler_output, None, out.aux_loss, out.router_stats,
                                    loss, logits)


class TokenMixForSequenceRegression(TokenMixForSequenceClassification):
    """Same head with one output and mean-squared-error loss (STS-B style scores)."""

    head = "regression"

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(logits[:, 0].float(), labels.float())
