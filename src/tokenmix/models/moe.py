"""Mixture-of-experts feed-forward and its routers (Sparse Mixers, Lee-Thorp & Ainslie 2022).

Tokens (batch x length, flattened) are routed in groups of at most ``max_group_size``. A float32
router gives each token a softmax over E experts; each expert processes at most
``capacity = max(min_expert_capacity, round(capacity_factor * tokens_per_group / E))`` tokens per group.

* ``experts_choose`` (official Sparse Mixer default): each expert takes its top-``capacity`` tokens by
  router probability. Experts are always full; a token may be picked by 0, 1 or many experts.
* ``tokens_choose``: each token picks its top-k experts; with batch-prioritised routing the most
  confident tokens claim capacity first, and all first choices come before any second choice.

Dispatch is index based: routing yields, for every (expert, slot), the token index and its combine
weight (the router probability; 0 for an empty slot). Tokens are gathered into an [E, groups*C, d]
buffer, the experts run as two batched matmuls over stacked weights, and outputs are scatter-added
back. No tokens x experts x capacity one-hot tensor is ever built. A token no expert takes gets 0
and passes through the block's residual connection only.

Beyond the paper: padding tokens are excluded from routing, so they never take expert capacity (the
official code routes them like real tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tokenmix.models.activations import ACTIVATION_FUNCTIONS
from tokenmix.models.config import ModelConfig
from tokenmix.models.tracing import is_tracing


def num_groups(num_tokens: int, max_group_size: int) -> int:
    """Smallest group count >= ceil(num_tokens / max_group_size) that divides num_tokens, so every
    group has the same size and none exceeds the maximum (unless num_tokens has no such divisor).
    Integer ceil-division, not math.ceil of a float: with a symbolic batch size (ONNX export) it
    simplifies exactly, so one-example groups stay one example per group for every batch size."""
    groups = max(1, -(-num_tokens // max_group_size))
    while num_tokens % groups:
        groups += 1
    return groups


def expert_capacity(tokens_per_group: int, num_experts: int, capacity_factor: float, min_capacity: int) -> int:
    capacity = max(min_capacity, int(round(capacity_factor * tokens_per_group / num_experts)))
    return min(capacity, tokens_per_group)


def experts_choose(probs: torch.Tensor, valid: torch.Tensor | None, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """probs [G, T, E] -> (token index, combine weight), each [G, E, C]: every expert's top-C tokens."""
    scores = probs.transpose(1, 2)
    if valid is not None:  # padding scores -1: picked only once real tokens run out, with weight 0
        scores = scores.masked_fill(~valid[:, None, :], -1.0)
    weight, token = scores.topk(capacity, dim=-1)
    return token, weight.clamp_min(0.0)


def tokens_choose(probs: torch.Tensor, valid: torch.Tensor | None, capacity: int, k: int,
                  prioritize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """probs [G, T, E] -> (token index, combine weight), each [G, E, C], from top-k token choices.
    Slots are filled in priority order: choice rank first (all top-1 picks before any top-2 pick),
    then router confidence (batch-prioritised routing) or position."""
    groups, tokens, experts = probs.shape
    gate, expert = probs.topk(k, dim=-1)  # [G, T, k]
    if prioritize:
        order = probs.amax(dim=-1).argsort(dim=-1, descending=True, stable=True)
    else:
        order = torch.arange(tokens, device=probs.device).expand(groups, tokens)
    by_priority = order.unsqueeze(-1).expand(-1, -1, k)
    expert = expert.gather(1, by_priority).transpose(1, 2).reshape(groups, k * tokens)  # choice-major
    gate = gate.gather(1, by_priority).transpose(1, 2).reshape(groups, k * tokens)
    token = order.repeat(1, k)
    claims = F.one_hot(expert, experts)  # [G, kT, E]: tokens x experts, no capacity axis
    if valid is not None:
        claims = claims * valid.gather(1, token).unsqueeze(-1)
    position = (claims.cumsum(dim=1) * claims).sum(dim=-1) - 1  # slot within the chosen expert; -1 = padding
    keep = (position >= 0) & (position < capacity)
    slots = experts * capacity
    slot = torch.where(keep, expert * capacity + position, slots)  # dropped claims go to a spare column
    slot_token = torch.zeros(groups, slots + 1, dtype=torch.long, device=probs.device).scatter(1, slot, token)
    slot_weight = torch.zeros(groups, slots + 1, dtype=probs.dtype, device=probs.device).scatter(1, slot, gate * keep)
    return slot_token[:, :slots].view(groups, experts, capacity), slot_weight[:, :slots].view(groups, experts, capacity)


class Experts(nn.Module):
    """E GELU feed-forward networks with stacked weights, applied as batched matmuls to [E, n, d]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        e, d, f, std = config.num_experts, config.hidden_size, config.expert_intermediate_size, config.initializer_range
        assert f is not None  # ModelConfig.__post_init__ fills it in
        self.weight_in = nn.Parameter(torch.empty(e, d, f).normal_(0.0, std))
        self.bias_in = nn.Parameter(torch.empty(e, 1, f).normal_(0.0, std))
        self.weight_out = nn.Parameter(torch.empty(e, f, d).normal_(0.0, std))
        self.bias_out = nn.Parameter(torch.zeros(e, 1, d))
        self.activation = ACTIVATION_FUNCTIONS[config.activation]
        self.dropout = nn.Dropout(config.expert_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.activation(torch.baddbmm(self.bias_in, x, self.weight_in))
        return self.dropout(torch.baddbmm(self.bias_out, hidden, self.weight_out))


class MoEFeedForward(nn.Module):
    """Drop-in replacement of the dense feed-forward, x [batch, seq, hidden] -> same shape; ``forward``
    also returns router statistics."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        self.config = config
        self.layer_index = layer_index
        self.router = nn.Linear(config.hidden_size, config.num_experts)
        nn.init.normal_(self.router.weight, 0.0, config.initializer_range)
        nn.init.zeros_(self.router.bias)
        self.experts = Experts(config)

    def route(self, tokens: torch.Tensor, valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """float32 router: (logits, probs, slot tokens, slot weights) for tokens [G, T, d]."""
        c = self.config
        with torch.autocast(tokens.device.type, enabled=False):  # selective precision, as Switch/official
            inputs = tokens.float()
            if self.training and c.router_jitter > 0:
                inputs = inputs * torch.empty_like(inputs).uniform_(1.0 - c.router_jitter, 1.0 + c.router_jitter)
            logits = F.linear(inputs, self.router.weight.float(), self.router.bias.float())
        if not is_tracing() and torch.isnan(logits).any():
            raise FloatingPointError(f"NaN in the router logits of layer {self.layer_index}; the inputs to the MoE "
                                     f"layer diverged (lower the learning rate or enable gradient clipping)")
        probs = logits.softmax(dim=-1)
        factor = c.train_capacity_factor if self.training else c.eval_capacity_factor
        capacity = expert_capacity(tokens.shape[1], c.num_experts, factor, c.min_expert_capacity)
        if c.router == "experts_choose":
            slot_token, slot_weight = experts_choose(probs, valid, capacity)
        else:
            slot_token, slot_weight = tokens_choose(probs, valid, capacity, c.num_selected_experts, c.batch_prioritized_routing)
        return logits, probs, slot_token, slot_weight

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch, length, d = x.shape
        groups = num_groups(batch * length, self.config.max_group_size)
        tokens = x.reshape(groups, -1, d)
        valid = None if padding_mask is None else padding_mask.reshape(groups, -1)
        logits, probs, slot_token, slot_weight = self.route(tokens, valid)
        experts, capacity = slot_token.shape[1:]
        index = slot_token.reshape(groups, experts * capacity, 1).expand(-1, -1, d)
        expert_in = tokens.gather(1, index).view(groups, experts, capacity, d).transpose(0, 1)
        expert_out = self.experts(expert_in.reshape(experts, groups * capacity, d))
        weighted = expert_out.view(experts, groups, capacity, d).transpose(0, 1) * slot_weight.unsqueeze(-1)
        y = torch.zeros_like(tokens, dtype=weighted.dtype).scatter_add(1, index, weighted.reshape(groups, -1, d))
        return y.view(batch, length, d).to(x.dtype), self.statistics(logits, probs, slot_token, slot_weight, valid)

    def statistics(self, logits: torch.Tensor, probs: torch.Tensor, slot_token: torch.Tensor, slot_weight: torch.Tensor,
                   valid: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Auxiliary losses (differentiable) and routing diagnostics (detached), over real tokens."""
        groups, tokens, experts = probs.shape
        weights = torch.ones(groups, tokens, device=probs.device) if valid is None else valid.float()
        count = weights.sum(dim=1).clamp_min(1.0)  # real tokens per group
        z_loss = ((torch.logsumexp(logits, dim=-1) ** 2 * weights).sum(dim=1) / count).mean()
        if self.config.router == "tokens_choose":  # Switch load balancing: E * sum_e f_e P_e, before capacity
            chosen = F.one_hot(probs.topk(self.config.num_selected_experts, dim=-1).indices, experts).sum(dim=2)
            fraction = (chosen * weights.unsqueeze(-1)).sum(dim=1) / count.unsqueeze(-1)
            mean_prob = (probs * weights.unsqueeze(-1)).sum(dim=1) / count.unsqueeze(-1)
            balance = (experts * (fraction * mean_prob).sum(dim=-1)).mean()
        else:  # experts always fill up under experts-choose: no balancing loss (official)
            balance = torch.zeros((), device=probs.device)
        with torch.no_grad():
            taken = (slot_weight > 0).float()
            visits = torch.zeros(groups, tokens, device=probs.device).scatter_add(1, slot_token.flatten(1), taken.flatten(1))
            dropped = (((visits == 0).float() * weights).sum() / weights.sum().clamp_min(1.0))
            usage = taken.sum(dim=(0, 2)) / (groups * slot_token.shape[-1])  # share of each expert's capacity used
        return {"load_balancing_loss": balance, "router_z_loss": z_loss, "fraction_dropped": dropped, "expert_usage": usage}
