"""Task heads: MLM + NSP pretraining, sequence classification and regression, and the Long Range
Arena classifiers (one document, or two towers).

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

from tokenmix.models.activations import ACTIVATION_FUNCTIONS
from tokenmix.models.config import ModelConfig
from tokenmix.models.encoder import EncoderOutput, TokenMixPreTrainedModel, register_output
from tokenmix.models.initializers import normal_linear
from tokenmix.models.losses import cross_entropy


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
    """Dense(d_model -> d_emb) -> GELU -> LayerNorm -> logits = h E^T + b with E the word embedding:
    hidden [batch, predictions, hidden] -> [batch, predictions, vocab]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        std, d_emb = config.initializer_range, config.embedding_size
        assert d_emb is not None  # ModelConfig.__post_init__ fills it in
        self.dense = normal_linear(config.hidden_size, d_emb, std)
        self.activation = ACTIVATION_FUNCTIONS[config.activation]
        self.norm = nn.LayerNorm(d_emb, eps=config.layer_norm_eps)
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
            losses = cross_entropy(mlm_logits.flatten(0, 1), masked_labels.flatten())
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


# --- Long Range Arena --------------------------------------------------------------------------------

def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """[B, L, d] -> [B, d]: the first position (CLS) or the mean over real (unpadded) tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def mlp(*sizes: int) -> nn.Sequential:
    """Dense -> ReLU -> ... -> Dense through ``sizes`` (PyTorch's default initialisation)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TokenMixForLRA(TokenMixPreTrainedModel):
    """The LRA code's classifier (``common_layers.classifier_head``): pool per ``config.pooling`` (the
    first position, where the CLS token is, or the mean over real tokens), then Dense(d_ff) -> ReLU ->
    Dense(num_labels), with d_ff the encoder's feed-forward width as in the LRA configs. LRA inputs
    have no segments: ``model(input_ids, attention_mask, labels)``. ``config.lra_task`` names the task."""

    head = "lra_classification"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.classifier = self.make_classifier(config.hidden_size, config.intermediate_size, config.num_labels)

    @staticmethod
    def make_classifier(d: int, d_ff: int, num_labels: int) -> nn.Sequential:
        return mlp(d, d_ff, num_labels)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(pooled [B, d], the encoder's MoE auxiliary loss or None)."""
        out = self.encoder(input_ids, attention_mask=attention_mask)
        return pool(out.last_hidden_state, attention_mask, self.config.pooling), out.aux_loss

    def classify(self, features: torch.Tensor, aux_loss: torch.Tensor | None,
                 labels: torch.Tensor | None) -> ClassificationOutput:
        """Logits of ``features`` (also returned as ``pooler_output``); loss = cross-entropy + aux loss."""
        logits = self.classifier(features)
        loss = None if labels is None else sum_losses(F.cross_entropy(logits.float(), labels.long()), aux_loss)
        return ClassificationOutput(last_hidden_state=features, pooler_output=features, aux_loss=aux_loss, loss=loss,
                                    logits=logits)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ClassificationOutput:
        return self.classify(*self.encode(input_ids, attention_mask), labels)


class TokenMixForLRATwoTower(TokenMixForLRA):
    """LRA Retrieval: both documents through the same encoder, then ``[u, v, u * v, u - v]`` through
    Dense(d_ff) -> ReLU -> Dense(d_ff / 2) -> ReLU -> Dense(num_labels) (the LRA code's
    ``classifier_head_dual`` with NLI interaction)."""

    head = "lra_two_tower"

    @staticmethod
    def make_classifier(d: int, d_ff: int, num_labels: int) -> nn.Sequential:
        return mlp(4 * d, d_ff, max(d_ff // 2, 1), num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, input_ids2: torch.Tensor | None = None,
                attention_mask2: torch.Tensor | None = None) -> ClassificationOutput:
        if input_ids2 is None:
            raise ValueError("the two-tower retrieval model needs input_ids2 (the second document)")
        u, aux = self.encode(input_ids, attention_mask)
        v, aux2 = self.encode(input_ids2, attention_mask2)
        return self.classify(torch.cat([u, v, u * v, u - v], dim=-1), sum_losses(aux, aux2), labels)
