"""MLM + NSP pretraining batches drawn from the shards written by :mod:`.prepare`.

Why a pure function of the step: example ``j`` of global step ``s`` depends only on
``(seed, split, s, j)`` (its own ``np.random.default_rng([seed, split, s, j])``), so there is no loader
state to checkpoint: a resumed run sees exactly the batches it would have seen, and DDP rank ``r`` with
local batch ``b`` takes ``offset = r * b`` of the same global batch (2 ranks x b == 1 rank x 2b).

Example construction follows the official FNet C4 pipeline: consecutive lines of one document are
accumulated while they fit in ``max_seq_len - 3`` tokens, a random pivot splits them into segments A and
B, and the input is ``[CLS] A [SEP] B [SEP]`` padded to ``max_seq_len``. ``nsp="swap"`` is the official
task (B A for half of the pairs, label 1 = swapped); ``nsp="random"`` is BERT's (B from another document
for half of the pairs, label 1 = random); ``nsp="none"`` keeps every pair in order with label 0, for
MLM-only pretraining (the objective then ignores the labels). Deliberate differences, both for random access: the document is
drawn with probability proportional to its length and the chunk starts at a random line (the official
stream walks every document from its start, so longer documents give proportionally more examples too);
a chunk that reaches the end of its document is extended backwards so that it is as full as the
official chunks; a single line longer than the budget is cropped to a random window (the official code
skips it). Masking: ``round(mlm_probability x non-special tokens)`` positions (at least 1, at most
``max_predictions_per_seq``), chosen uniformly among non-special tokens; 80% [MASK], 10% a random
non-special token, 10% unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from tokenmix.io.files import read_json
from tokenmix.text.pairs import truncate_pair
from tokenmix.text.prepare import FORMAT, KINDS, SPLITS, prepare_command
from tokenmix.train.configs import PretrainingDataConfig

SPLIT_IDS = {split: i for i, split in enumerate(SPLITS)}
HELDOUT_BATCH = 32  # examples per held-out batch (--eval-batches counts these)


class PretrainingDataset:
    """All shards of one split of a prepared folder, memory-mapped; :meth:`batch` builds batches."""

    def __init__(self, directory: str | Path, split: str = "train") -> None:
        self.directory = directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: {directory} is not a finished data preparation; prepare "
                                    f"it first with {prepare_command(directory)}")
        self.meta = read_json(meta_path)
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path} has format {self.meta.get('format')!r}, expected {FORMAT!r}; prepare the data "
                             f"again into a new folder with {prepare_command('NEW_DIR')}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        self.split, self.directory = split, directory
        info = self.meta["splits"][split]
        if info["documents"] == 0:
            more = "more text" + (" or with --heldout-fraction > 0" if split == "heldout" else "")
            raise ValueError(f"{directory} has no {split} documents; prepare it again into a new folder from {more}: "
                             f"{prepare_command('NEW_DIR')}")
        shards = []
        for i in range(info["shards"]):
            paths = [directory / split / f"shard_{i:05d}.{kind}.npy" for kind in KINDS]
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"shard file {missing[0]} is missing; restore it with "
                                        f"{prepare_command(directory, self.meta)}")
            shards.append([np.load(p, mmap_mode="r").view(np.ndarray) for p in paths])  # plain views: faster indexing
        self.tokens, self.lines, self.docs = (list(column) for column in zip(*shards))
        self.token_starts = np.cumsum([0] + [len(t) for t in self.tokens])
        self.num_tokens = int(self.token_starts[-1])
        self.num_lines = sum(len(lines) - 1 for lines in self.lines)
        self.num_documents = sum(len(docs) - 1 for docs in self.docs)
        if (self.num_tokens, self.num_lines, self.num_documents) != (info["tokens"], info["lines"], info["documents"]):
            raise ValueError(f"the {split} shards of {directory} do not match its meta.json; prepare the data "
                             f"again into a new folder with {prepare_command('NEW_DIR')}")
        self.vocab_size = int(self.meta["vocab_size"])
        ids = self.meta["special_ids"]
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = (int(ids[k]) for k in ("pad", "cls", "sep", "mask"))
        self.special_ids = np.array(self.meta["all_special_ids"], dtype=np.int64)
        self.normal_ids = np.setdiff1d(np.arange(self.vocab_size), self.special_ids)

    def __repr__(self) -> str:
        return (f"PretrainingDataset({str(self.directory)!r}, split={self.split!r}: {self.num_documents} documents, "
                f"{self.num_lines} lines, {self.num_tokens} tokens)")

    def _random_document(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(shard, first line, end line) of a document drawn with probability proportional to its length."""
        t = int(rng.integers(self.num_tokens))
        s = int(np.searchsorted(self.token_starts, t, side="right")) - 1
        line = int(np.searchsorted(self.lines[s], t - self.token_starts[s], side="right")) - 1
        k = int(np.searchsorted(self.docs[s], line, side="right")) - 1
        return s, int(self.docs[s][k]), int(self.docs[s][k + 1])

    def _chunk(self, rng: np.random.Generator, s: int, first: int, end: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of consecutive lines from a random start that fit in ``budget`` (at least one line), as an
        int64 array, and the token offset of each line after the first (the possible pivots)."""
        start = int(rng.integers(first, end))
        lo, hi = max(first, start - budget), min(end, start + budget)  # every line holds >= 1 token
        offsets = np.asarray(self.lines[s][lo:hi + 1], dtype=np.int64)
        lengths = np.diff(offsets)
        forward = np.cumsum(lengths[start - lo:])
        stop = start + max(1, int(np.searchsorted(forward, budget, side="right")))
        if stop == end and start > lo:  # reached the document's end: fill the rest with earlier lines
            room = budget - int(forward[stop - start - 1])
            start -= int(np.searchsorted(np.cumsum(lengths[:start - lo][::-1]), room, side="right"))
        line_offsets = offsets[start - lo:stop - lo + 1]
        tokens = np.asarray(self.tokens[s][line_offsets[0]:line_offsets[-1]], dtype=np.int64)
        return tokens, line_offsets[1:-1] - line_offsets[0]

    def _example(self, rng: np.random.Generator, config: PretrainingDataConfig) -> tuple[np.ndarray, np.ndarray, int]:
        budget = config.max_seq_len - 3
        s, first, end = self._random_document(rng)
        tokens, pivots = self._chunk(rng, s, first, end, budget)
        if len(pivots):
            cut = int(pivots[rng.integers(len(pivots))])
        else:  # a single line: crop a window that fits and split it inside
            if len(tokens) > budget:
                start = int(rng.integers(len(tokens) - budget + 1))
                tokens = tokens[start:start + budget]
            cut = int(rng.integers(1, len(tokens))) if len(tokens) > 1 else len(tokens)
        a, b = tokens[:cut], tokens[cut:]
        label = 0
        if config.nsp == "swap":
            if rng.random() < 0.5:
                a, b, label = b, a, 1
        elif config.nsp == "random" and rng.random() < 0.5 and self.num_documents > 1:
            for _ in range(10):  # another document; long documents are drawn more often, so retry
                other = self._random_document(rng)
                if other[:2] != (s, first):
                    b, _ = self._chunk(rng, *other, max(1, budget - len(a)))
                    label = 1
                    break
        return (*truncate_pair(a, b, budget), label)

    def batch(self, step: int, batch_size: int, config: PretrainingDataConfig, offset: int = 0) -> dict[str, torch.Tensor]:
        """Examples ``offset .. offset + batch_size - 1`` of global step ``step``, as the keyword arguments
        of ``TokenMixForPreTraining.forward`` (fixed shapes [B, max_seq_len] and [B, max_predictions_per_seq])."""
        if step < 0 or batch_size < 1 or offset < 0:
            raise ValueError(f"need step >= 0, batch_size >= 1 and offset >= 0, got {step}, {batch_size}, {offset}")
        L, P = config.max_seq_len, config.max_predictions_per_seq
        ids = np.full((batch_size, L), self.pad_id, dtype=np.int64)
        types = np.zeros((batch_size, L), dtype=np.int64)
        lengths = np.empty(batch_size, dtype=np.int64)
        nsp = np.empty(batch_size, dtype=np.int64)
        keys = np.empty((batch_size, L))
        actions = np.empty((batch_size, P))
        replacements = np.empty((batch_size, P), dtype=np.int64)
        for i in range(batch_size):
            rng = np.random.default_rng([config.seed, SPLIT_IDS[self.split], step, offset + i])
            a, b, nsp[i] = self._example(rng, config)
            la, lb = len(a), len(b)
            row = ids[i]
            row[0], row[la + 1], row[la + lb + 2] = self.cls_id, self.sep_id, self.sep_id
            row[1:la + 1], row[la + 2:la + lb + 2] = a, b
            types[i, la + 2:la + lb + 3] = 1
            lengths[i] = la + lb + 3
            keys[i], actions[i] = rng.random(L), rng.random(P)
            replacements[i] = self.normal_ids[rng.integers(len(self.normal_ids), size=P)]

        # Masking, vectorised over the batch: the smallest random keys among the candidates are chosen.
        real = np.arange(L) < lengths[:, None]
        candidates = real & ~np.isin(ids, self.special_ids)
        count = candidates.sum(1)
        predict = np.minimum(np.clip(np.floor(config.mlm_probability * count + 0.5), 1, P), count).astype(np.int64)
        keys[~candidates] = 2.0
        valid = np.arange(P) < predict[:, None]
        positions = np.sort(np.where(valid, np.argsort(keys, axis=1)[:, :P], L), axis=1)  # real ones first
        positions[~valid] = 0
        rows = np.arange(batch_size)[:, None]
        labels = np.where(valid, ids[rows, positions], 0)
        new = np.where(actions < 0.8, self.mask_id, np.where(actions < 0.9, replacements, labels))
        ids[np.broadcast_to(rows, positions.shape)[valid], positions[valid]] = new[valid]
        return {
            "input_ids": torch.from_numpy(ids),
            "token_type_ids": torch.from_numpy(types),
            "attention_mask": torch.from_numpy(real.astype(np.int64)),
            "masked_positions": torch.from_numpy(positions),
            "masked_labels": torch.from_numpy(labels),
            "masked_weights": torch.from_numpy(valid.astype(np.float32)),
            "next_sentence_labels": torch.from_numpy(nsp),
        }


def eval_batches(dataset: PretrainingDataset, num_batches: int, batch_size: int, config: PretrainingDataConfig,
                 rank: int = 0, world_size: int = 1) -> Iterator[tuple[dict[str, torch.Tensor], bool]]:
    """The fixed evaluation set: the ``HELDOUT_BATCH`` examples of each of steps ``0 .. num_batches - 1``
    of ``dataset`` (pass the held-out split), the same examples whatever the batch size and the number
    of processes, so that evaluations are comparable across checkpoints and runs. They come in chunks
    of at most ``batch_size``, dealt round-robin to the ranks; every rank gets as many chunks (sharded
    models need every rank in every forward pass), and a chunk given only to even the count out is
    yielded with ``counted=False``: run it, but leave it out of the sums."""
    chunks = [(step, offset, min(batch_size, HELDOUT_BATCH - offset)) for step in range(num_batches)
              for offset in range(0, HELDOUT_BATCH, batch_size)]
    for index in range(rank, -(-len(chunks) // world_size) * world_size, world_size):
        step, offset, size = chunks[index % len(chunks)]
        yield dataset.batch(step, size, config, offset=offset), index < len(chunks)
