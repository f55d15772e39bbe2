"""Text (pair) classification inputs: ``[CLS] a [SEP] b [SEP]`` encoding and batching.

Length policy (:func:`padding_policy`), the same in training, evaluation and prediction, so that a
prediction depends only on the example itself:

* attention models honour the padding mask: each batch is padded to its longest member, and examples
  of similar length are batched together;
* parameter-free mixings (Fourier, Hartley) mix every example at the smallest of a set of lengths
  that holds it (``--length-buckets``: fine by default, or exact); batches are formed within one
  length, so batch-mates never change an example's padding (transformers' FNet pads to the batch's
  longest: batch-dependent; the official code pads everything to 512: slow on short texts);
* mixings with length-sized parameters (Linear, Random, circulant, Toeplitz) see one fixed length.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

from tokenmix.benchmarks.examples import Example
from tokenmix.models.config import ModelConfig
from tokenmix.models.mixing.registry import is_length_dependent, mixes_any_length
from tokenmix.progress import Progress
from tokenmix.text.configs import parse_length_buckets
from tokenmix.text.tokenizer import Tokenizer

S = TypeVar("S", bound="Segment")


class Segment(Protocol):
    """Token ids of one segment: a list or a numpy array."""

    def __len__(self) -> int: ...

    def __getitem__(self: S, index: slice) -> S: ...


@dataclass
class Encoded:
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: list[int | float | None]
    truncated: int  # examples cut to fit max_len


def truncate_pair(a: S, b: S, budget: int) -> tuple[S, S]:
    """Longest-first: drop tokens from the end of the longer segment (A on ties) until both fit
    ``budget``, in closed form. Lists and numpy arrays alike (text pairs and pretraining segments)."""
    if len(a) + len(b) <= budget:
        return a, b
    short = min(len(a), len(b))
    if 2 * short < budget:
        return (a[:budget - short], b) if len(a) > len(b) else (a, b[:budget - short])
    return a[:budget // 2], b[:budget - budget // 2]


def encode(tokenizer: Tokenizer, examples: Sequence[Example], max_len: int) -> Encoded:
    """Token ids and segment ids of each example, truncated (longest segment first) to ``max_len``."""
    if max_len < 4:
        raise ValueError(f"max_seq_len must be at least 4 tokens, got {max_len}")
    first = tokenizer.encode_batch([e.text_a for e in examples])
    pairs = [e.text_b for e in examples]
    second = tokenizer.encode_batch([t or "" for t in pairs])
    ids, types, truncated = [], [], 0
    for a, b, text_b in zip(first, second, pairs):
        specials = 3 if text_b is not None else 2
        if len(a) + len(b) + specials > max_len:
            truncated += 1
            a, b = truncate_pair(a, b, max_len - specials)
        seq = [tokenizer.cls_id, *a, tokenizer.sep_id]
        seg = [0] * len(seq)
        if text_b is not None:
            seq += [*b, tokenizer.sep_id]
            seg += [1] * (len(b) + 1)
        ids.append(seq)
        types.append(seg)
    return Encoded(ids, types, [e.label for e in examples], truncated)


def padding_policy(config: ModelConfig, max_len: int, length_buckets: str = "auto") -> tuple[int | None, tuple[int, ...] | None]:
    """``(fixed_len, buckets)`` for :class:`PairBatches`: ``(max_len, None)`` for a mixing with
    length-sized parameters (or ``--length-buckets fixed``), ``(None, lengths)`` for a parameter-free
    mixing (``()`` = exact lengths), ``(None, None)`` for attention (padded per batch)."""
    if not is_length_dependent(config):
        return None, None
    buckets = parse_length_buckets(length_buckets, max_len) if mixes_any_length(config) else None
    return (max_len, None) if buckets is None else (None, buckets)


def bucket_length(n: int, buckets: Sequence[int]) -> int:
    """The smallest of the sorted ``buckets`` that holds ``n`` tokens (``n`` itself when there are none)."""
    return buckets[bisect.bisect_left(buckets, n)] if buckets else n


class PairBatches:
    """Batches of an :class:`Encoded` set: ``batches(epoch)`` for training (shuffled from
    ``seed + epoch``, so a resumed run sees the same order) and :meth:`ordered` for prediction."""

    def __init__(self, data: Encoded, batch_size: int, pad_id: int, fixed_len: int | None, seed: int = 0,
                 regression: bool = False, extras: dict[str, Any] | None = None,
                 buckets: Sequence[int] | None = None) -> None:
        """``fixed_len`` pads every example to it; else ``buckets`` (see :func:`padding_policy`) pads each
        example to its bucket's length, batches formed within one length; else a batch is padded to
        its longest member. ``extras``: per-example tensors (first axis = example) added to every
        batch under their key, e.g. cached teacher logits for distillation."""
        self.data, self.batch_size, self.pad_id = data, batch_size, pad_id
        self.fixed_len, self.seed, self.regression, self.extras = fixed_len, seed, regression, extras or {}
        self.buckets = None if fixed_len or buckets is None else tuple(sorted(buckets))

    def padded_length(self, i: int) -> int | None:
        """The length example ``i`` is mixed at, or None when its batch decides (attention)."""
        if self.fixed_len:
            return self.fixed_len
        return None if self.buckets is None else bucket_length(len(self.data.input_ids[i]), self.buckets)

    def __len__(self) -> int:
        if self.buckets is None:
            return -(-len(self.data.input_ids) // self.batch_size)
        sizes = Counter(self.padded_length(i) for i in range(len(self.data.input_ids)))
        return sum(-(-n // self.batch_size) for n in sizes.values())

    def collate(self, indices: Sequence[int]) -> dict[str, Any]:
        length = self.padded_length(indices[0]) or max(len(self.data.input_ids[i]) for i in indices)
        ids = torch.full((len(indices), length), self.pad_id, dtype=torch.long)
        types = torch.zeros((len(indices), length), dtype=torch.long)
        mask = torch.zeros((len(indices), length), dtype=torch.long)
        for row, i in enumerate(indices):
            n = len(self.data.input_ids[i])
            ids[row, :n] = torch.tensor(self.data.input_ids[i])
            types[row, :n] = torch.tensor(self.data.token_type_ids[i])
            mask[row, :n] = 1
        batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        labels = [self.data.labels[i] for i in indices]
        if all(label is not None for label in labels):
            batch["labels"] = torch.tensor(labels, dtype=torch.float if self.regression else torch.long)
        batch.update({key: values[list(indices)] for key, values in self.extras.items()})
        return batch

    def _chunks(self, order: list[int]) -> list[list[int]]:
        """``order`` cut into batches; with buckets, each batch within one length (order kept inside it)."""
        if self.buckets is None:
            return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        by_length: dict[int | None, list[int]] = {}
        for i in order:
            by_length.setdefault(self.padded_length(i), []).append(i)
        return [group[i:i + self.batch_size] for group in by_length.values() for i in range(0, len(group), self.batch_size)]

    def _groups(self, order: list[int]) -> list[list[int]]:
        if self.fixed_len is None and self.buckets is None:  # attention: sort windows of 50 batches by length
            window = 50 * self.batch_size
            order = [i for start in range(0, len(order), window)
                     for i in sorted(order[start:start + window], key=lambda i: len(self.data.input_ids[i]))]
        return self._chunks(order)

    def __call__(self, epoch: int) -> Iterator[dict[str, Any]]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        order = list(range(len(self.data.input_ids)))
        rng.shuffle(order)
        groups = self._groups(order)
        rng.shuffle(groups)
        return (self.collate(group) for group in groups)

    def ordered(self) -> Iterator[tuple[list[int], dict[str, Any]]]:
        """(indices, batch) pairs covering every example once, grouped by length for speed."""
        order = sorted(range(len(self.data.input_ids)), key=lambda i: len(self.data.input_ids[i]))
        for group in self._chunks(order):
            yield group, self.collate(group)


def predict_logits(model: torch.nn.Module, batches: PairBatches, progress: bool = False) -> torch.Tensor:
    """Logits [N, num_labels] of every example, in the original order (model in eval mode); ``progress``
    shows a progress bar over the examples."""
    device = next(model.parameters()).device
    rows: list[Any] = [None] * len(batches.data.input_ids)
    bar = Progress(total=len(rows), desc="predict", unit="ex", dynamic_ncols=True, disable=not progress)
    with torch.inference_mode(), bar:
        for indices, batch in batches.ordered():
            bar.update(len(indices))
            inputs = {k: batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask")}
            logits = model(**inputs).logits.float().cpu()
            for i, row in zip(indices, logits):
                rows[i] = row
    return torch.stack(rows)
