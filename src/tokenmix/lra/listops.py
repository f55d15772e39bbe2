"""LRA ListOps data: the official ``basic_{train,val,test}.tsv`` files (columns ``Source``, ``Target``)
or our generator (:mod:`tokenmix.lra.listops_grammar`) at the published settings.

The official files write each expression as a parenthesised binary tree, e.g.
``( ( ( [MAX 2 ) 9 ) ] )``; the parentheses repeat the structure that ``[OP`` ... ``]`` already gives,
so we drop them, as the repaired LRA pipeline does. Every other token is looked up in the explicit
18-token vocabulary, so ``]`` survives (the original pipeline's tokenizer dropped the brackets and
made the task unsolvable; see ``tests/test_lra_data.py``). A row with an unknown token is malformed:
counted, reported and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tokenmix.lra import listops_grammar as listops
from tokenmix.lra.data import DataOptions, Split, cache_key, cached, make_encoder, parse_label, read_tsv
from tokenmix.lra.tasks import TaskSpec

# The LRA generator keeps expressions with 500 < length < 2000 tokens (strict), 96k/2k/2k examples.
SIZES = {"train": 96_000, "val": 2_000, "test": 2_000}
SETTINGS = dict(listops.LRA_SETTINGS, min_length=501, max_length=1999)
HEADER = ("source", "target")
_CHUNK = 1000


def parse_source(text: str) -> list[int]:
    """Token ids of one ``Source`` cell (parentheses dropped); ValueError on an unknown token."""
    ids = []
    for token in text.split():
        if token in ("(", ")"):
            continue
        if token not in listops.TOKEN_TO_ID or token in (listops.PAD, listops.CLS, listops.UNK):
            raise ValueError(f"unknown ListOps token {token!r}")
        ids.append(listops.TOKEN_TO_ID[token])
    if not ids:
        raise ValueError("empty expression")
    return ids


def read_file(path: Path) -> tuple[list[tuple[list[int], int]], dict]:
    return read_tsv(path, 2, lambda row: (parse_source(row[0]), parse_label(row[1], listops.NUM_CLASSES)), HEADER)


def find_files(data_dir: Path, splits: Sequence[str]) -> dict[str, Path]:
    """``*_train.tsv`` / ``*_val.tsv`` / ``*_test.tsv`` (``.gz`` accepted) in ``data_dir``."""
    found = {}
    for split in splits:
        matches = sorted(p for pattern in (f"*_{split}.tsv", f"*_{split}.tsv.gz", f"{split}.tsv") for p in data_dir.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"no ListOps {split} file in {data_dir}: expected basic_{split}.tsv (official LRA "
                                    f"release), or omit --data-dir to generate the data")
        found[split] = matches[0]
    return found


def generate_files(out_dir: Path, seed: int, sizes: dict[str, int]) -> dict[str, Path]:
    """Write ``basic_{split}.tsv`` in the official format (without the redundant parentheses); the
    splits are disjoint and each is a pure function of ``seed``."""
    from tqdm.auto import tqdm

    from tokenmix.io.files import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    paths = {}
    with tqdm(total=sum(sizes.values()), desc="generating ListOps", unit="ex") as bar:
        for split_index, (split, size) in enumerate(sizes.items()):
            lines = ["Source\tTarget"]
            for chunk, start in enumerate(range(0, size, _CHUNK)):
                n = min(_CHUNK, size - start)
                rng_seed = seed * 1_000_003 + split_index * 100_003 + chunk
                for tokens, label in listops.generate_examples(n, rng_seed, exclude=seen, **SETTINGS):
                    text = " ".join(tokens)
                    seen.add(text)
                    lines.append(f"{text}\t{label}")
                bar.update(n)
            paths[split] = atomic_write(out_dir / f"basic_{split}.tsv", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    return paths


def load(task: TaskSpec, options: DataOptions, splits: Sequence[str]) -> dict[str, Split]:
    cache = Path(options.cache_dir)
    if options.data_dir:
        files = find_files(Path(options.data_dir), splits)
    else:
        sizes = {s: (options.train_size if s == "train" else options.eval_size) or SIZES[s] for s in SIZES}
        folder = cache / f"listops-tsv-{cache_key(seed=options.seed, sizes=sizes, settings=SETTINGS)}"
        files = {s: folder / f"basic_{s}.tsv" for s in SIZES}
        if not all(p.is_file() for p in files.values()):
            files = generate_files(folder, options.seed, sizes)

    def build() -> dict[str, Split]:
        result = {}
        for split in splits:
            encoder = make_encoder(task, options)
            rows, stats = read_file(files[split])
            ids = encoder.encode([r[0] for r in rows], str(files[split]))
            lengths = np.array([len(r[0]) for r in rows])
            stats.update(truncated=encoder.truncated, length_min=int(lengths.min()), length_mean=float(lengths.mean()),
                         length_max=int(lengths.max()))
            result[split] = Split(ids, np.array([r[1] for r in rows], dtype=np.int64), stats=stats)
        return result

    key = cache_key(task="listops", files={s: files[s] for s in splits}, pooling=options.pooling, overflow=options.on_overflow)
    return cached(cache, f"listops-{key}", build, splits)
