"""Cross-entropy over a large vocabulary under bf16/fp16 autocast, without float32 round trips.

``F.cross_entropy(logits.float(), ...)`` on the MLM head's [N, V] half-precision logits (N ≈ 600
masked positions, V = 32000) makes a float32 copy, float32 log-probabilities, a zero-filled float32
gradient and a cast back: on a CPU these memory-bound passes took more time than everything else
in the bf16 pretraining step outside the matmuls (README "Precision"). :func:`cross_entropy` instead
walks the rows in chunks whose float32 working set stays in a core's cache: the forward keeps only
the half-precision logits and each row's log-sum-exp, the backward recomputes the softmax per chunk
and writes the half-precision gradient once. The arithmetic per row is the same float32 max-shifted
log-sum-exp, so the loss equals ``F.cross_entropy(logits.float())`` up to float32 rounding. Float32
logits, and other devices, take ``F.cross_entropy`` unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 2**17  # float32 elements per chunk: 512 KiB, inside a core's L2 cache


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy in float32 of ``logits`` [N, V] against ``labels`` [N] (reduction none)."""
    if logits.dtype in (torch.bfloat16, torch.float16) and logits.device.type == "cpu":
        return _ChunkedCrossEntropy.apply(logits, labels.long())
    return F.cross_entropy(logits.float(), labels.long(), reduction="none")


def _chunks(logits: torch.Tensor) -> range:
    return range(0, len(logits), max(1, CHUNK_ELEMENTS // max(1, logits.shape[1])))


class _ChunkedCrossEntropy(torch.autograd.Function):
    """loss_i = logsumexp(z_i) - z_i[y_i]; d loss_i / d z_i = softmax(z_i) - onehot(y_i)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        step = _chunks(logits).step
        lse = torch.cat([torch.logsumexp(logits[i : i + step].float(), dim=1) for i in _chunks(logits)]) \
            if len(logits) else logits.new_empty(0, dtype=torch.float32)
        ctx.save_for_backward(logits, labels, lse)
        return lse - logits.gather(1, labels.unsqueeze(1)).squeeze(1).float()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, labels, lse = ctx.saved_tensors
        out = torch.empty_like(logits)
        step = _chunks(logits).step
        for i in _chunks(logits):
            rows = slice(i, i + step)
            probs = logits[rows].float().sub_(lse[rows, None]).exp_()
            probs.scatter_add_(1, labels[rows, None], probs.new_full((len(probs), 1), -1.0))
            out[rows] = probs.mul_(grad[rows, None])
        return out, None
