"""Tokenize a text corpus once into memory-mappable shards for pretraining.

Why shards of flat token arrays: training then reads any sentence of any document in O(1) through
``np.load(mmap_mode="r")``, with no tokenizer in the loop and no corpus held in memory, and batches can
be drawn as a pure function of the step (see :mod:`.pretraining`).

Input: plain text (documents separated by blank lines, one sentence per line, as in the official FNet
C4 pipeline, which splits each document on newlines) or JSONL with a ``text`` field; ``.gz`` accepted.
Reading is streamed and shards are bounded by ``shard_tokens``, so memory does not grow with the corpus.

Output ``out/``::

    train/shard_00000.tokens.npy   uint16 (uint32 if the vocabulary exceeds 65535) token ids
    train/shard_00000.lines.npy    int64 start offset of every line into tokens, plus the end offset
    train/shard_00000.docs.npy     int64 index of every document's first line, plus the line count
    heldout/...                    the same for the held-out documents
    meta.json                      written last: fingerprint, vocabulary, special ids, per-split totals

Documents never straddle shards. Each file is written under a temporary name and renamed. A rerun of a
finished preparation returns at once; a rerun of an interrupted one tokenizes again (the split and shard
boundaries are deterministic) but leaves the shards already written untouched. A fingerprint of the
inputs (sizes, mtimes), the tokenizer (sha256 of tokenizer.json) and the settings is checked so that an
output folder is never silently mixed with data from other inputs.
"""

from __future__ import annotations

import hashlib
import itertools
import shlex
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tokenmix.io.files import atomic_write, ensure_writable, read_json, write_json
from tokenmix.progress import Progress
from tokenmix.text.configs import DataPrepareConfig
from tokenmix.text.corpus import check_inputs, read_documents
from tokenmix.text.tokenizer import Tokenizer, check_tokenizer, tokenizer_sha256

FORMAT = "tokenmix-pretraining-shards/1"
SPLITS = ("train", "heldout")
KINDS = ("tokens", "lines", "docs")


def prepare_command(out: str | Path, meta: dict[str, Any] | None = None) -> str:
    """The ``tokenmix data prepare`` command an error about prepared data points the user at: with a
    folder's ``meta.json``, the very command that made it (its absolute inputs, tokenizer and settings), which
    rewrites lost shards; without, the command's shape."""
    if meta is None:
        return f"`tokenmix data prepare --input FILE[,FILE...] --tokenizer DIR --out {shlex.quote(str(out))}`"
    settings = meta["fingerprint"]["settings"]
    args = ["--input", ",".join(i["path"] for i in meta["fingerprint"]["inputs"]), "--tokenizer", meta["config"]["tokenizer"],
            "--out", str(out), *(f"--{k.replace('_', '-')}={v}" for k, v in settings.items())]
    return f"`tokenmix data prepare {shlex.join(args)}`"


class _ShardWriter:
    """Buffers whole documents of one split and writes a shard when the next document would overflow
    ``shard_tokens``. The last document added is always still buffered, so the caller can move it."""

    def __init__(self, folder: Path, dtype: np.dtype, shard_tokens: int, before_write: Callable[[], None]) -> None:
        self.folder, self.dtype, self.shard_tokens, self.before_write = folder, dtype, shard_tokens, before_write
        self.buffer: list[tuple[np.ndarray, np.ndarray]] = []  # (tokens, line lengths) per document
        self.buffered_tokens = self.shards = 0
        self.totals = {"tokens": 0, "lines": 0, "documents": 0, "shards": 0}

    @property
    def num_documents(self) -> int:
        return self.totals["documents"] + len(self.buffer)

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        if self.buffer and self.buffered_tokens + len(tokens) > self.shard_tokens:
            self.flush()
        self.buffer.append((tokens, lengths))
        self.buffered_tokens += len(tokens)

    def pop_last(self) -> tuple[np.ndarray, np.ndarray]:
        tokens, lengths = self.buffer.pop()
        self.buffered_tokens -= len(tokens)
        return tokens, lengths

    def flush(self) -> None:
        if not self.buffer:
            return
        lengths = np.concatenate([lengths for _, lengths in self.buffer])
        paths = [self.folder / f"shard_{self.shards:05d}.{kind}.npy" for kind in KINDS]
        if not all(path.is_file() for path in paths):  # an existing shard is identical: skip it
            self.before_write()
            lines = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=lines[1:])
            docs = np.zeros(len(self.buffer) + 1, dtype=np.int64)
            np.cumsum([len(lengths) for _, lengths in self.buffer], out=docs[1:])
            tokens = np.concatenate([tokens for tokens, _ in self.buffer]).astype(self.dtype, copy=False)
            for path, array in zip(paths, (tokens, lines, docs)):
                atomic_write(path, partial(_save_array, array=array))
        for key, value in (("tokens", self.buffered_tokens), ("lines", len(lengths)),
                           ("documents", len(self.buffer)), ("shards", 1)):
            self.totals[key] += value
        self.shards += 1
        self.buffer, self.buffered_tokens = [], 0


def _save_array(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append .npy to a temporary name
        np.save(f, array)


def _is_heldout(seed: int, index: int, fraction: float) -> bool:
    """A stable hash, not Python's salted ``hash``: the same document lands in the same split on every run."""
    digest = hashlib.blake2b(f"{seed}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64 < fraction


def _fingerprint(config: DataPrepareConfig, paths: list[Path]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "inputs": [{"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in paths],
        "tokenizer_sha256": tokenizer_sha256(Path(config.tokenizer)),
        "settings": {"heldout_fraction": config.heldout_fraction, "shard_tokens": config.shard_tokens, "seed": config.seed},
    }


def _check_output(out: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The finished meta.json if ``out`` already holds this exact preparation; refuse other data."""
    what = {"format": "an older format", "inputs": "different inputs (paths, sizes or modification times)",
            "tokenizer_sha256": "a different tokenizer",
            "settings": "different settings (heldout_fraction, shard_tokens or seed)"}
    for name in ("meta.json", "fingerprint.json"):
        path = out / name
        if path.is_file():
            recorded = read_json(path).get("fingerprint", {})
            for key, text in what.items():
                if recorded.get(key) != fingerprint[key]:
                    raise ValueError(f"{out} holds data prepared from {text}; remove that folder or choose another "
                                     "--out to prepare this data")
            return read_json(path) if name == "meta.json" else None
    if any((out / split).exists() for split in SPLITS):
        raise ValueError(f"{out} holds train/ or heldout/ data of unknown origin (no meta.json); remove that folder or "
                         "choose another --out")
    return None


def recorded_path(value: str | Path, folder: Path) -> Path:
    """A path that ``folder``'s record holds: absolute since this version; an older, relative one is
    taken relative to ``folder`` when it exists there, else to the working directory."""
    path = Path(value)
    return folder / path if not path.is_absolute() and (folder / path).exists() else path


def data_tokenizer(data_dir: str | Path) -> Path:
    """The tokenizer that the prepared data in ``data_dir`` was made with, checked against the sha256
    recorded then: a tokenizer replaced since would give its token ids other meanings."""
    meta = read_json(Path(data_dir) / "meta.json")
    path = recorded_path(meta["config"]["tokenizer"], Path(data_dir))
    if not path.exists():
        raise FileNotFoundError(f"the tokenizer {path} of the data in {data_dir} is not there (moved, or a path "
                                f"relative to another folder); pass it with --tokenizer")
    check_tokenizer(path, meta["fingerprint"]["tokenizer_sha256"], f"the data in {data_dir} was prepared with",
                    "pass the original with --tokenizer, or prepare the data again")
    return path


def _complete(out: Path, meta: dict[str, Any]) -> bool:
    return all((out / split / f"shard_{i:05d}.{kind}.npy").is_file()
               for split in SPLITS for i in range(meta["splits"][split]["shards"]) for kind in KINDS)


def _encode_chunk(tokenizer: Any, docs: list[list[str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Tokenize the lines of several documents in one call; yield (tokens, line lengths) per document,
    dropping lines that encode to nothing so that every stored line holds at least one token."""
    ids = tokenizer.encode_batch([line for doc in docs for line in doc])
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    tokens = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= tokenizer.vocab_size):
        raise ValueError(f"the tokenizer produced ids outside [0, {tokenizer.vocab_size}); check the tokenizer folder")
    line_ends = np.cumsum(lengths)
    first = 0
    for doc in docs:
        doc_lengths = lengths[first:first + len(doc)]
        start = int(line_ends[first - 1]) if first else 0
        first += len(doc)
        yield tokens[start:start + int(doc_lengths.sum())], doc_lengths[doc_lengths > 0]


def prepare_data(config: DataPrepareConfig) -> Path:
    """Tokenize ``config.input`` into ``config.out`` (see the module docstring); returns the output folder."""
    for name, flag in (("input", "--input FILE[,FILE...]"), ("tokenizer", "--tokenizer DIR"), ("out", "--out DIR")):
        if not getattr(config, name):
            raise ValueError(f"no {name} given; pass {flag}")
    paths = check_inputs(config.input)
    tokenizer = Tokenizer.load(config.tokenizer)
    out = ensure_writable(config.out, directory=True, flag="--out")  # a file or unwritable --out before tokenizing
    fingerprint = _fingerprint(config, paths)
    meta = _check_output(out, fingerprint)
    if meta is not None and _complete(out, meta):
        return out

    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 65535 else np.uint32)
    started: list[bool] = []

    def before_write() -> None:  # the in-progress fingerprint guards a folder as soon as it holds data
        if not started:
            for split in SPLITS:
                (out / split).mkdir(parents=True, exist_ok=True)
            write_json(out / "fingerprint.json", {"fingerprint": fingerprint})
            started.append(True)

    writers = {split: _ShardWriter(out / split, dtype, config.shard_tokens, before_write) for split in SPLITS}
    index = 0
    with Progress(total=sum(p.stat().st_size for p in paths), unit="B", unit_scale=True, unit_divisor=1024,
              desc="tokenizing", disable=None) as bar:
        documents = (doc for path in paths for doc in read_documents(path, advance=bar.update))
        while True:
            chunk, lines = [], 0
            for doc in documents:
                chunk.append(doc)
                lines += len(doc)
                if lines >= config.batch_lines:
                    break
            if not chunk:
                break
            for doc_tokens, doc_lengths in _encode_chunk(tokenizer, chunk):
                if len(doc_tokens):
                    split = "heldout" if _is_heldout(config.seed, index, config.heldout_fraction) else "train"
                    writers[split].add(doc_tokens.astype(dtype), doc_lengths)
                index += 1
            bar.set_postfix(documents=index, refresh=False)

    train, heldout = writers["train"], writers["heldout"]
    if train.num_documents + heldout.num_documents == 0:
        raise ValueError(f"no documents found in {', '.join(map(str, paths))}: the files are empty, blank, or encode to "
                         "no tokens; pass text with at least one non-empty line")
    if config.heldout_fraction > 0 and heldout.num_documents == 0 and train.num_documents >= 2:
        heldout.add(*train.pop_last())
    elif train.num_documents == 0 and heldout.num_documents >= 2:
        train.add(*heldout.pop_last())
    for writer in writers.values():
        writer.flush()
    before_write()  # both split folders exist even when one is empty
    special = {name: int(getattr(tokenizer, f"{name}_id")) for name in ("pad", "unk", "cls", "sep", "mask")}
    write_json(out / "meta.json", {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "config": {**asdict(config), "tokenizer": str(Path(config.tokenizer).resolve())},  # usable from any folder
        "vocab_size": int(tokenizer.vocab_size),
        "dtype": dtype.name,
        "special_ids": special,
        "all_special_ids": sorted({int(i) for i in tokenizer.special_ids} | set(special.values())),
        "splits": {split: writer.totals for split, writer in writers.items()},
    })
    (out / "fingerprint.json").unlink(missing_ok=True)
    return out
