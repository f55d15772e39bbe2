"""Byte-level text tasks: Text (IMDb sentiment) and Retrieval (AAN document-pair matching).

Text reads ``{train,val,test}.tsv`` / ``.csv`` (``.gz`` accepted; a header naming ``label`` and ``text``
columns, else label first) or the ``aclImdb`` folder layout (``train/pos/*.txt``, ``train/neg/*.txt``,
``test/...``). Retrieval reads the LRA release's ``new_aan_pairs.{train,eval,test}.tsv``: no header,
columns ``label, id1, id2, text1, text2``. A text becomes its UTF-8 bytes (ids ``2 + byte``), cut at
the task length with a count (or refused with ``--on-overflow error``). Without a validation file,
``--val-size`` rows of train are held out by the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tokenmix.lra.splits import (
    DataOptions,
    Split,
    bytes_ids,
    cache_key,
    cached,
    make_padder,
    open_text,
    parse_label,
    read_tsv,
    shuffled_holdout,
)
from tokenmix.lra.tasks import TaskSpec


def _table_files(data_dir: Path, split: str) -> list[Path]:
    names = [f"{split}{ext}" for ext in (".tsv", ".tsv.gz", ".csv", ".csv.gz")]
    return [data_dir / n for n in names if (data_dir / n).is_file()]


def read_labelled_text(path: Path, num_classes: int) -> tuple[list[tuple[str, int]], dict]:
    """(text, label) rows of a TSV/CSV file; the header (if any) says which column is which."""
    delimiter = "," if ".csv" in path.suffixes else "\t"
    with open_text(path) as handle:
        first = handle.readline().rstrip("\r\n").lower().split(delimiter)
    names = [c.strip().strip('"') for c in first]
    if "label" in names and ("text" in names or "review" in names or "sentence" in names):
        label_col = names.index("label")
        text_col = next(names.index(n) for n in ("text", "review", "sentence") if n in names)
        header, columns = tuple(names), len(names)
    else:
        label_col, text_col, header, columns = 0, 1, None, 2
    return read_tsv(path, columns, lambda row: (row[text_col], parse_label(row[label_col], num_classes)), header, delimiter)


def read_acl_imdb(folder: Path) -> tuple[list[tuple[str, int]], dict]:
    """``folder/{neg,pos}/*.txt`` -> (text, 0/1), sorted by file name for determinism."""
    rows = []
    for label, name in enumerate(("neg", "pos")):
        files = sorted((folder / name).glob("*.txt"))
        rows += [(f.read_text(encoding="utf-8", errors="replace"), label) for f in files]
    if not rows:
        raise FileNotFoundError(f"no reviews in {folder}/pos or {folder}/neg")
    return rows, {"source": str(folder), "rows": len(rows), "malformed_rows": 0}


def _text_rows(data_dir: Path, split: str, num_classes: int) -> tuple[list[tuple[str, int]], dict] | None:
    files = _table_files(data_dir, split)
    if files:
        return read_labelled_text(files[0], num_classes)
    for root in (data_dir, data_dir / "aclImdb"):
        if (root / split / "pos").is_dir():
            return read_acl_imdb(root / split)
    return None


def _require_dir(options: DataOptions, what: str) -> Path:
    if not options.data_dir:
        raise ValueError(f"this task needs --data-dir: {what}")
    data_dir = Path(options.data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory {data_dir} does not exist")
    return data_dir


def _sources(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.is_file() and p.suffix in (".tsv", ".csv", ".gz"))[:20]


def load_text(task: TaskSpec, options: DataOptions, splits: Sequence[str]) -> dict[str, Split]:
    data_dir = _require_dir(options, "a folder with train/test .tsv(.gz)/.csv files (label, text) or the aclImdb layout")

    def build() -> dict[str, Split]:
        rows = {}
        for split in ("train", "val", "test"):
            found = _text_rows(data_dir, split, task.num_classes)
            if found is None and split != "val" and split in splits:
                raise FileNotFoundError(f"no {split} data in {data_dir}: expected {split}.tsv(.gz) / {split}.csv or "
                                        f"{split}/pos, {split}/neg folders (aclImdb)")
            if found is not None:
                rows[split] = found
        if "val" not in rows and ("val" in splits or "train" in splits):
            train, stats = rows["train"]
            rest, held = shuffled_holdout(train, options.val_size, options.seed)
            rows["train"] = rest, {**stats, "rows": len(rest)}
            rows["val"] = held, {**stats, "rows": len(held), "held_out_of": "train"}
        result = {}
        for split in splits:
            padder = make_padder(task, options)
            records, stats = rows[split]
            ids = padder.encode([bytes_ids(text) for text, _ in records], f"{task.name} {split}")
            result[split] = Split(ids, np.array([label for _, label in records], dtype=np.int64),
                                  stats={**stats, "truncated": padder.truncated})
        return result

    key = cache_key(task=task.name, files=_sources(data_dir), dirs=str(data_dir.resolve()), pooling=options.pooling,
                    overflow=options.on_overflow, val_size=options.val_size, seed=options.seed, splits=list(splits))
    return cached(Path(options.cache_dir), f"{task.name}-{key}", build, splits)


RETRIEVAL_SPLIT_NAMES = {"train": ("train",), "val": ("eval", "val", "dev"), "test": ("test",)}


def _parse_pair(row: list[str]) -> tuple[str, str, int]:
    return row[3], row[4], parse_label(row[0], 2)


def load_retrieval(task: TaskSpec, options: DataOptions, splits: Sequence[str]) -> dict[str, Split]:
    data_dir = _require_dir(options, "the LRA release folder with new_aan_pairs.{train,eval,test}.tsv")
    files = {}
    for split in splits:
        candidates = [p for name in RETRIEVAL_SPLIT_NAMES[split] for ext in (".tsv", ".tsv.gz")
                      for p in sorted(data_dir.glob(f"*{name}{ext}"))]
        if not candidates:
            raise FileNotFoundError(f"no retrieval {split} file in {data_dir}: expected new_aan_pairs."
                                    f"{RETRIEVAL_SPLIT_NAMES[split][0]}.tsv (label, id1, id2, text1, text2; no header)")
        files[split] = candidates[0]

    def build() -> dict[str, Split]:
        result = {}
        for split, path in files.items():
            rows, stats = read_tsv(path, 5, _parse_pair)
            first, second = make_padder(task, options), make_padder(task, options)
            ids1 = first.encode([bytes_ids(r[0]) for r in rows], f"{path} text1")
            ids2 = second.encode([bytes_ids(r[1]) for r in rows], f"{path} text2")
            result[split] = Split(ids1, np.array([r[2] for r in rows], dtype=np.int64), ids2,
                                  {**stats, "truncated": first.truncated + second.truncated})
        return result

    key = cache_key(task=task.name, files=files, pooling=options.pooling, overflow=options.on_overflow)
    return cached(Path(options.cache_dir), f"{task.name}-{key}", build, splits)
