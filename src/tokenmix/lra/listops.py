"""ListOps (Nangia & Bowman 2018; the Long Range Arena version): evaluate nested list operations.

An example is a bracketed prefix expression over the digits 0-9, e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]``
(= 9); the label is its value, so there are 10 classes. Operators:

* ``MAX``, ``MIN``: largest / smallest argument.
* ``MED``: median, as LRA computes it (``int(np.median(args))``): for an even number of arguments the
  mean of the two middle values rounded down, e.g. ``[MED 1 4 ]`` = 2. We keep LRA's rule so labels
  match the published task.
* ``SM``: sum modulo 10.

Tokens are whitespace-separated and each has its own id, brackets included: ``[MAX`` opens an
operator and ``]`` closes it. (One LRA tokenizer dropped the brackets, which makes nested
expressions ambiguous; here a test guards against that.)

The generator follows LRA's: the root is an operator with 2..``max_args`` arguments; each argument
below ``max_depth`` is itself an operator with probability ``op_prob`` (LRA: 0.25), else a digit.
Expressions outside ``[min_length, max_length]`` tokens are rejected and redrawn. LRA's setting is
``max_depth=10, max_args=10, min_length=500, max_length=2000``; the demo uses shallow, short ones.

The LRA files: the official ``basic_{train,val,test}.tsv`` (columns ``Source``, ``Target``) write each
expression as a parenthesised binary tree, e.g. ``( ( ( [MAX 2 ) 9 ) ] )``; the parentheses repeat the
structure that ``[OP`` ... ``]`` already gives, so we drop them, as the repaired LRA pipeline does.
Every other token is looked up in the explicit 18-token vocabulary, so ``]`` survives (the original
pipeline's tokenizer dropped the brackets and made the task unsolvable; see ``tests/test_lra_data.py``).
A row with an unknown token is malformed: counted, reported and skipped. Without ``--data-dir`` the
files are generated at the published settings (:func:`generate_files`).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenmix.io.files import atomic_write
from tokenmix.lra.splits import DataOptions, Split, cache_key, cached, make_padder, parse_label, read_tsv
from tokenmix.lra.tasks import TaskSpec
from tokenmix.progress import Progress

OPERATORS: dict[str, Callable[[list[int]], int]] = {
    "MAX": max,
    "MIN": min,
    "MED": lambda args: int(statistics.median(args)),
    "SM": lambda args: sum(args) % 10,
}
PAD, CLS, UNK, END = "[PAD]", "[CLS]", "[UNK]", "]"
VOCAB: tuple[str, ...] = (PAD, CLS, UNK, *(f"[{op}" for op in OPERATORS), END, *(str(d) for d in range(10)))
_OP_TOKENS = tuple(f"[{op}" for op in OPERATORS)
TOKEN_TO_ID: dict[str, int] = {token: i for i, token in enumerate(VOCAB)}
PAD_ID, CLS_ID, UNK_ID = TOKEN_TO_ID[PAD], TOKEN_TO_ID[CLS], TOKEN_TO_ID[UNK]
VOCAB_SIZE = len(VOCAB)
NUM_CLASSES = 10
LRA_SETTINGS = dict(max_depth=10, max_args=10, min_length=500, max_length=2000)


def tokenize(expression: str) -> list[str]:
    return expression.split()


def evaluate_expression(expression: str | Sequence[str]) -> int:
    """Value (0-9) of an expression given as text or tokens; ValueError if it is malformed."""
    tokens = tokenize(expression) if isinstance(expression, str) else list(expression)
    stack: list[tuple[str, list[int]]] = []  # open operators and the argument values seen so far
    result: int | None = None
    for token in tokens:
        if result is not None:
            raise ValueError(f"tokens after the end of the expression: {token!r}")
        if token.startswith("[") and token[1:] in OPERATORS:
            stack.append((token[1:], []))
        elif token == END:
            if not stack or not stack[-1][1]:
                raise ValueError("']' without an open operator or with no arguments")
            op, args = stack.pop()
            value = OPERATORS[op](args)
            if stack:
                stack[-1][1].append(value)
            else:
                result = value
        elif token.isdigit() and len(token) == 1:
            if not stack:
                raise ValueError(f"digit {token} outside an operator")
            stack[-1][1].append(int(token))
        else:
            raise ValueError(f"unknown token {token!r}; expected [OP, ], or a digit (operators: {', '.join(OPERATORS)})")
    if result is None:
        raise ValueError("incomplete expression: an operator is not closed" if stack else "empty expression")
    return result


def max_expression_length(max_depth: int, max_args: int) -> int:
    """Tokens in the longest expression the settings allow (every argument an operator)."""
    length = 0
    for _ in range(max_depth):
        length = 2 + max_args * max(length, 1)
    return length


def _generate_tree(rng: random.Random, depth: int, max_depth: int, max_args: int, op_prob: float, out: list[str]) -> None:
    """Append the tokens of one operator node at ``depth`` (root = 1) to ``out``."""
    out.append(rng.choice(_OP_TOKENS))
    for _ in range(rng.randint(2, max_args)):
        if depth < max_depth and rng.random() < op_prob:
            _generate_tree(rng, depth + 1, max_depth, max_args, op_prob, out)
        else:
            out.append(str(rng.randrange(10)))
    out.append(END)


def generate_examples(
    n: int,
    seed: int,
    *,
    max_depth: int = 10,
    max_args: int = 10,
    min_length: int = 1,
    max_length: int | None = None,
    op_prob: float = 0.25,
    exclude: Collection[str] = (),
    max_attempts: int = 100_000,
) -> list[tuple[list[str], int]]:
    """``n`` (tokens, label) pairs, a pure function of the arguments. Expressions whose text is in
    ``exclude`` are redrawn (so an eval split can be disjoint from the training split)."""
    if max_depth < 1 or max_args < 2:
        raise ValueError(f"need max_depth >= 1 and max_args >= 2, got max_depth={max_depth}, max_args={max_args}")
    if not 0.0 <= op_prob <= 1.0:
        raise ValueError(f"op_prob must be in [0, 1], got {op_prob}")
    longest = max_expression_length(max_depth, max_args)
    upper = longest if max_length is None else min(max_length, longest)
    if max(min_length, 4) > upper:  # the shortest expression is [OP d d ]
        raise ValueError(f"no expression has between {min_length} and {max_length} tokens with max_depth={max_depth}, "
                         f"max_args={max_args} (lengths 4..{longest} are possible)")
    rng = random.Random(seed)
    examples: list[tuple[list[str], int]] = []
    rejected = 0
    while len(examples) < n:
        tokens: list[str] = []
        _generate_tree(rng, 1, max_depth, max_args, op_prob, tokens)
        if min_length <= len(tokens) <= upper and (not exclude or " ".join(tokens) not in exclude):
            examples.append((tokens, evaluate_expression(tokens)))
            rejected = 0
            continue
        rejected += 1
        if rejected >= max_attempts:
            raise ValueError(f"{max_attempts} expressions in a row fell outside length [{min_length}, {max_length}] "
                             f"or were excluded; widen the bounds or raise op_prob/max_args")
    return examples


def encode(tokens: Sequence[str], seq_len: int) -> tuple[list[int], list[int]]:
    """``[CLS] + tokens``, truncated or padded to ``seq_len``: (ids, attention mask with 1 = real token)."""
    ids = [CLS_ID, *(TOKEN_TO_ID.get(token, UNK_ID) for token in tokens)][:seq_len]
    padding = seq_len - len(ids)
    return ids + [PAD_ID] * padding, [1] * len(ids) + [0] * padding


def make_split(n: int, seed: int, seq_len: int, *, max_length: int | None = None,
               **settings: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids [n, seq_len], attention_mask [n, seq_len], labels [n]) as int64 tensors of
    :func:`generate_examples` ``(n, seed, **settings)``.

    ``max_length`` defaults to ``seq_len - 1`` so that no expression is truncated (a truncated
    expression's label cannot be computed from its input); pass a larger one to truncate like LRA.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2 ([CLS] and one token), got {seq_len}")
    examples = generate_examples(n, seed, max_length=seq_len - 1 if max_length is None else max_length, **settings)
    return to_tensors(examples, seq_len)


def to_tensors(examples: Sequence[tuple[Sequence[str], int]], seq_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode (tokens, label) pairs: (input_ids [n, seq_len], attention_mask [n, seq_len], labels [n])."""
    encoded = [encode(tokens, seq_len) for tokens, _ in examples]
    shape = (len(examples), seq_len)
    input_ids = torch.tensor([ids for ids, _ in encoded], dtype=torch.long).view(shape)
    attention_mask = torch.tensor([mask for _, mask in encoded], dtype=torch.long).view(shape)
    labels = torch.tensor([label for _, label in examples], dtype=torch.long)
    return input_ids, attention_mask, labels


# --- the LRA files ------------------------------------------------------------------------------------

# The LRA generator keeps expressions with 500 < length < 2000 tokens (strict), 96k/2k/2k examples.
SIZES = {"train": 96_000, "val": 2_000, "test": 2_000}
SETTINGS = dict(LRA_SETTINGS, min_length=501, max_length=1999)
HEADER = ("source", "target")
_CHUNK = 1000


def parse_source(text: str) -> list[int]:
    """Token ids of one ``Source`` cell (parentheses dropped); ValueError on an unknown token."""
    ids = []
    for token in text.split():
        if token in ("(", ")"):
            continue
        if token not in TOKEN_TO_ID or token in (PAD, CLS, UNK):
            raise ValueError(f"unknown ListOps token {token!r}")
        ids.append(TOKEN_TO_ID[token])
    if not ids:
        raise ValueError("empty expression")
    return ids


def read_file(path: Path) -> tuple[list[tuple[list[int], int]], dict]:
    return read_tsv(path, 2, lambda row: (parse_source(row[0]), parse_label(row[1], NUM_CLASSES)), HEADER)


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
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    paths = {}
    with Progress(total=sum(sizes.values()), desc="generating ListOps", unit="ex") as bar:
        for split_index, (split, size) in enumerate(sizes.items()):
            lines = ["Source\tTarget"]
            for chunk, start in enumerate(range(0, size, _CHUNK)):
                n = min(_CHUNK, size - start)
                rng_seed = seed * 1_000_003 + split_index * 100_003 + chunk
                for tokens, label in generate_examples(n, rng_seed, exclude=seen, **SETTINGS):
                    text = " ".join(tokens)
                    seen.add(text)
                    lines.append(f"{text}\t{label}")
                bar.update(n)
            paths[split] = _write_text(out_dir / f"basic_{split}.tsv", "\n".join(lines) + "\n")
    return paths


def _write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


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
            padder = make_padder(task, options, CLS_ID)
            rows, stats = read_file(files[split])
            ids = padder.encode([r[0] for r in rows], str(files[split]))
            lengths = np.array([len(r[0]) for r in rows])
            stats.update(truncated=padder.truncated, length_min=int(lengths.min()), length_mean=float(lengths.mean()),
                         length_max=int(lengths.max()))
            result[split] = Split(ids, np.array([r[1] for r in rows], dtype=np.int64), stats=stats)
        return result

    key = cache_key(task="listops", files={s: files[s] for s in splits}, pooling=options.pooling, overflow=options.on_overflow)
    return cached(cache, f"listops-{key}", build, splits)
