"""What every LRA loader shares: the :class:`Split` type, padding to the task length, TSV reading that
counts bad rows, and the on-disk cache. The loaders (:mod:`.listops`, :mod:`.text`, :mod:`.image`,
:mod:`.pathfinder`) import this module; :mod:`.data` picks the loader of a task.

A split is a :class:`Split`: token ids ``[N, L]`` (0 = padding; the CLS token already in front when
the task pools on it), labels ``[N]`` and, for the two-tower task, the second document's ids. Splits
are cached as ``.npz`` files (no pickle) keyed by the source files or generator settings, so a second
run starts at once; generated data is a pure function of the seed.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenmix.io.files import atomic_write
from tokenmix.lra.tasks import BYTE_CLS, BYTE_OFFSET, OVERFLOW, SPLITS, TaskSpec


@dataclass
class Split:
    input_ids: np.ndarray  # [N, L] uint8/int16, 0 = padding
    labels: np.ndarray  # [N] int64
    input_ids2: np.ndarray | None = None  # second document (retrieval)
    stats: dict[str, Any] = field(default_factory=dict)  # malformed rows, truncations, source

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray) -> dict[str, Any]:
        """Model inputs of the rows ``index`` as torch tensors (``attention_mask`` from the padding)."""
        def ids(array: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            part = torch.from_numpy(array[index].astype(np.int64))
            return part, (part != 0).long()

        batch: dict[str, Any] = {}
        batch["input_ids"], batch["attention_mask"] = ids(self.input_ids)
        if self.input_ids2 is not None:
            batch["input_ids2"], batch["attention_mask2"] = ids(self.input_ids2)
        batch["labels"] = torch.from_numpy(self.labels[index].astype(np.int64))
        return batch

    @staticmethod
    def concat(parts: dict[str, Split]) -> Split:
        """The named splits as one, in order (``lra eval --split all``: a folder made only to be scored)."""
        splits = list(parts.values())
        if len(splits) == 1:
            return splits[0]
        ids2 = None if splits[0].input_ids2 is None else np.concatenate([p.input_ids2 for p in splits])
        return Split(np.concatenate([p.input_ids for p in splits]), np.concatenate([p.labels for p in splits]), ids2,
                     {name: part.stats for name, part in parts.items()})

    def sample(self, size: int, seed: int) -> Split:
        """``size`` rows drawn without replacement by ``seed``, in their original order (all if fewer)."""
        if size >= len(self):
            return self
        keep = np.sort(np.random.default_rng([seed, size]).choice(len(self), size, replace=False))
        ids2 = None if self.input_ids2 is None else self.input_ids2[keep]
        return Split(self.input_ids[keep], self.labels[keep], ids2, {**self.stats, "sampled_from": len(self)})

    def head(self, width: int) -> Split:
        """The first ``width`` positions of every sequence (CLS included); ``stats["truncated"]`` then
        counts the examples that had a real token beyond them."""
        if width >= self.input_ids.shape[1]:
            return self

        def cut(array: np.ndarray) -> tuple[np.ndarray, int]:
            return np.ascontiguousarray(array[:, :width]), int((array[:, width:] != 0).any(axis=1).sum())

        ids, cut1 = cut(self.input_ids)
        ids2, cut2 = (None, 0) if self.input_ids2 is None else cut(self.input_ids2)
        return Split(ids, self.labels, ids2, {**self.stats, "truncated": max(cut1, cut2), "width": width})


class SequencePadder:
    """Pads/truncates id sequences to a fixed length (CLS in front when ``cls_id`` is set) and counts
    truncations; ``on_overflow="error"`` refuses an over-long sequence instead."""

    def __init__(self, seq_len: int, cls_id: int | None, on_overflow: str, vocab_size: int) -> None:
        if on_overflow not in OVERFLOW:
            raise ValueError(f"on_overflow={on_overflow!r} is not valid; choose one of {', '.join(OVERFLOW)}")
        self.seq_len, self.cls_id, self.on_overflow = seq_len, cls_id, on_overflow
        self.width = seq_len + (cls_id is not None)
        self.dtype = np.uint8 if vocab_size <= 256 else np.int16
        self.truncated = 0

    def encode(self, rows: Sequence[Sequence[int]] | np.ndarray, where: str) -> np.ndarray:
        out = np.zeros((len(rows), self.width), dtype=self.dtype)
        start = int(self.cls_id is not None)
        if start:
            out[:, 0] = self.cls_id
        for i, ids in enumerate(rows):
            if len(ids) > self.seq_len:
                if self.on_overflow == "error":
                    raise ValueError(f"{where}: example {i} has {len(ids)} tokens, more than the task's {self.seq_len}; "
                                     f"pass --on-overflow truncate to cut long examples (they are counted)")
                self.truncated += 1
                ids = ids[: self.seq_len]
            if len(ids) == 0:
                raise ValueError(f"{where}: example {i} is empty; remove empty rows from the file")
            out[i, start : start + len(ids)] = ids
        return out


def open_text(path: Path) -> io.TextIOBase:
    """Text handle of a plain or gzipped file (``.gz``), UTF-8 with undecodable bytes replaced."""
    if not path.is_file():
        raise FileNotFoundError(f"missing data file {path}")
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115 (the caller closes it)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def read_tsv(path: Path, columns: int, parse: Callable[[list[str]], Any], header: Sequence[str] | None = None,
             delimiter: str = "\t") -> tuple[list[Any], dict[str, Any]]:
    """Parse every row with ``parse``; rows with the wrong column count or a ``parse`` error (other than
    a bad label, which is fatal) are counted, reported on stderr and skipped, never silently."""
    csv.field_size_limit(sys.maxsize)
    records, bad_lines = [], []
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        for number, row in enumerate(reader, start=1):
            if number == 1 and header is not None and [c.strip().lower() for c in row[: len(header)]] == list(header):
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != columns:
                bad_lines.append(number)
                continue
            try:
                records.append(parse(row))
            except LabelError as err:
                raise ValueError(f"{path}, line {number}: {err}") from None
            except ValueError:
                bad_lines.append(number)
    stats = {"source": str(path), "rows": len(records), "malformed_rows": len(bad_lines)}
    if bad_lines:
        shown = ", ".join(map(str, bad_lines[:5])) + (" ..." if len(bad_lines) > 5 else "")
        print(f"tokenmix: warning: {path}: skipped {len(bad_lines)} malformed row(s) (expected {columns} "
              f"{'tab' if delimiter == chr(9) else 'comma'}-separated columns); lines {shown}", file=sys.stderr)
        stats["malformed_lines"] = bad_lines[:20]
    if not records:
        raise ValueError(f"{path} has no usable rows ({len(bad_lines)} malformed); check the file format: "
                         f"{columns} columns{', header ' + '/'.join(header) if header else ''}")
    return records, stats


class LabelError(ValueError):
    """A label outside the task's class set: fatal, unlike a malformed row."""


def parse_label(text: str, num_classes: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"label {text!r} is not a number") from None  # a malformed row
    if not value.is_integer() or not 0 <= value < num_classes:
        raise LabelError(f"label {text!r} is outside the class set 0..{num_classes - 1}; fix the file or pick the right task")
    return int(value)


def bytes_ids(text: str) -> list[int]:
    return [b + BYTE_OFFSET for b in text.encode("utf-8")]


# --- cache -------------------------------------------------------------------------------------------

def cache_key(**parts: Any) -> str:
    """Stable hash of the settings that determine a split (source files by path, size and mtime)."""
    def describe(value: Any) -> Any:
        if isinstance(value, Path):
            stat = value.stat()
            return [str(value.resolve()), stat.st_size, int(stat.st_mtime)]
        if isinstance(value, dict):
            return {str(k): describe(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [describe(v) for v in value]
        return value

    text = json.dumps(describe(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_split(path: Path, split: Split) -> None:
    arrays: dict[str, Any] = {"input_ids": split.input_ids, "labels": split.labels, "stats": np.array(json.dumps(split.stats))}
    if split.input_ids2 is not None:
        arrays["input_ids2"] = split.input_ids2
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, write)


def load_split(path: Path) -> Split:
    with np.load(path, allow_pickle=False) as data:
        return Split(data["input_ids"], data["labels"], data.get("input_ids2"),
                     json.loads(str(data["stats"])))


def cached(cache_dir: Path, key: str, build: Callable[[], dict[str, Split]], splits: Sequence[str] = SPLITS) -> dict[str, Split]:
    """Load ``splits`` from ``cache_dir/key`` or build, save and return them."""
    folder = cache_dir / key
    paths = {name: folder / f"{name}.npz" for name in splits}
    if all(p.is_file() for p in paths.values()):
        return {name: load_split(p) for name, p in paths.items()}
    built = build()
    for name in splits:
        save_split(paths[name], built[name])
    return {name: built[name] for name in splits}


def shuffled_holdout(rows: list[Any], size: int, seed: int) -> tuple[list[Any], list[Any]]:
    """(rest, held out ``size`` rows), chosen by a seeded permutation: a validation split cut from a
    training file that has none."""
    if not 0 < size < len(rows):
        raise ValueError(f"cannot hold out {size} of {len(rows)} rows for validation; pass a smaller --val-size")
    order = np.random.default_rng(seed).permutation(len(rows))
    held = set(order[:size].tolist())
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in order[:size]]


def iter_batches(split: Split, batch_size: int, shuffle_seed: int | None = None) -> Iterator[dict[str, Any]]:
    order = np.arange(len(split)) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(len(split))
    for start in range(0, len(order), batch_size):
        yield split.batch(order[start : start + batch_size])


@dataclass
class DataOptions:
    """What the loaders need from a run/eval config."""

    data_dir: str | None
    cache_dir: str
    seed: int
    pooling: str
    on_overflow: str = "truncate"
    train_size: int | None = None  # generated tasks: examples per split (None = the published sizes)
    eval_size: int | None = None
    val_size: int = 2000  # held out of train when the data has no validation file
    difficulty: str = "hard"  # pathfinder
    max_len: int | None = None  # keep the first N content tokens (None = the task's full length)
    workers: int = 1  # processes that generate Pathfinder images


def make_padder(task: TaskSpec, options: DataOptions, cls_id: int = BYTE_CLS) -> SequencePadder:
    """The padder of ``task``'s sequences: the CLS token ``cls_id`` in front when the model pools on it."""
    return SequencePadder(task.seq_len, cls_id if options.pooling == "cls" else None, options.on_overflow, task.vocab_size)
