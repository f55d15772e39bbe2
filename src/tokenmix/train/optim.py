"""Optimiser construction shared by the benchmarks, the demo and the trainers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def adamw(params: Iterable[Any], lr: float, weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.999),
          eps: float = 1e-6) -> torch.optim.AdamW:
    """AdamW with the official FNet defaults (eps 1e-6, decay 0.01), using the fused kernel where the
    installed torch has one for the parameters' device: on a 2-core CPU it is ~8x faster than the
    default per-tensor loop (4 ms vs 34 ms per step for the 9M parameters of a mini model)."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device/dtype/torch version
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def warmup_linear_decay(step: int, warmup_steps: int, total_steps: int, decay_fraction: float = 1.0) -> float:
    """Learning-rate multiplier of the official FNet recipe: linear warm-up from 0 over
    ``warmup_steps``, then linear decay to 0 at ``total_steps`` (over its last ``decay_fraction`` of the
    steps after the warm-up, holding the peak before: warm-up-stable-decay)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return min(1.0, max(0.0, (total_steps - step) / max(1.0, decay_fraction * (total_steps - warmup_steps))))


def warmup_budget_decay(step: int, train_seconds: float, warmup_steps: int, budget_seconds: float,
                        decay_fraction: float = 1.0) -> float:
    """The budget recipe's multiplier (Cramming's one-cycle over a time budget): linear warm-up over
    ``warmup_steps``, then linear decay to 0 when ``train_seconds`` reaches ``budget_seconds``, so the
    run ends annealed whatever its speed. With ``decay_fraction`` < 1 the peak holds until that share of
    the budget is left (warm-up-stable-decay): short budgets are spent leaving the unigram plateau at the
    full rate, and the run still ends annealed."""
    remaining = max(0.0, 1.0 - train_seconds / budget_seconds)
    return min((step + 1) / max(warmup_steps, 1), remaining / decay_fraction, 1.0)
