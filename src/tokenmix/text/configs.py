"""Settings of the text commands (``tokenizer train``, ``data prepare``, ``predict``): torch-free
dataclasses, one command-line flag per field, so the CLI builds its parser without importing the
tokenizer library or numpy. Validation here covers what needs no file access."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tokenmix.options import OVERWRITE_HELP, check_ranges, option
from tokenmix.precisions import PRECISION_HELP, check_precision
from tokenmix.text.tables import table_format

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, in this order


def _paths(value: str | os.PathLike | tuple) -> tuple[str, ...]:
    """One path or several, as a tuple of strings (the Python API accepts a single path too)."""
    return (str(value),) if isinstance(value, (str, os.PathLike)) else tuple(map(str, value))


def parse_length_buckets(spec: str, max_len: int) -> tuple[int, ...] | None:
    """The lengths a parameter-free mixing pads an example to (the smallest that holds it), from
    ``--length-buckets``: ``auto`` (every length to 32, then every 2nd to 64, every 4th to 128 and so on:
    at most 1/16 padding), ``exact`` (``()``: each example at its own length), ``fixed`` (``None``: all
    at ``max_len``, as the official code) or comma-separated lengths; ``max_len`` always ends the set."""
    if spec == "fixed":
        return None
    if spec == "exact":
        return ()
    if spec == "auto":
        return tuple(n for n in range(1, max_len + 1) if n % max(1, (1 << (n.bit_length() - 1)) // 16) == 0
                     or n == max_len)
    try:
        lengths = sorted({int(part) for part in spec.split(",")})
    except ValueError:
        raise ValueError(f"--length-buckets {spec!r} is not auto, exact, fixed or comma-separated lengths "
                         f"(e.g. 16,32,64)") from None
    if lengths[0] < 1 or lengths[-1] > max_len:
        raise ValueError(f"--length-buckets lengths must be in [1, --max-seq-len {max_len}], got {spec!r}")
    return (*lengths, max_len) if lengths[-1] < max_len else tuple(lengths)


@dataclass
class TokenizerTrainConfig:
    input: tuple[str, ...] = option((), "text files: plain text, .gz, or JSONL (.jsonl / .jsonl.gz, one object per line)")
    out: str = option("", "output folder (created) for tokenizer.json and tokenizer_config.json", output="run")
    vocab_size: int = option(32000, "vocabulary size, the 5 special tokens included")
    lowercase: bool = option(False, "lowercase text before tokenizing (saved with the tokenizer)")
    text_field: str = option("text", "the field that holds the text in JSONL inputs")
    # SentencePiece's defaults. Most of the time goes to the first EM rounds over the 1M seed pieces; on
    # 57 MB of Wikipedia (2 cores) seed_size 300k halves it but costs ~5% more tokens per word,
    # n_sub_iterations 1 costs ~6%, and shrinking_factor 0.5 saves only ~10%, so none is the default.
    max_piece_length: int = option(16, "longest token, in characters")
    seed_size: int = option(1_000_000, "candidate pieces the EM starts from; fewer train faster but compress worse")
    shrinking_factor: float = option(0.75, "fraction of candidate pieces kept at each pruning round")
    n_sub_iterations: int = option(2, "EM iterations between pruning rounds")
    overwrite: bool = option(False, "replace an existing tokenizer in --out (data prepared with it would no longer match)")

    def __post_init__(self) -> None:
        self.input = _paths(self.input)
        if not self.input:
            raise ValueError("no --input files given; pass the text to train on, e.g. --input corpus.txt,more.jsonl.gz")
        if not self.out:
            raise ValueError("missing --out; name the folder to write tokenizer.json into, e.g. --out tokenizer")
        check_ranges(self)
        if self.vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"--vocab-size {self.vocab_size} is too small: the special tokens {' '.join(SPECIAL_TOKENS)} "
                             f"alone take {len(SPECIAL_TOKENS)} ids; use e.g. --vocab-size 32000")


@dataclass
class DataPrepareConfig:
    input: tuple[str, ...] = option((), "input files: text (documents separated by blank lines, one sentence per line) "
                                        "or .jsonl with a \"text\" field; .gz accepted")
    tokenizer: str = option("", "tokenizer folder holding tokenizer.json")
    out: str = option("", "output folder for the shards and meta.json; rerunning resumes an interrupted preparation",
                      output="run")
    heldout_fraction: float = option(0.01, "fraction of documents held out for evaluation (at least one when there "
                                           "are two or more documents)")
    shard_tokens: int = option(8_000_000, "tokens per shard (a shard only exceeds it when one document does)")
    seed: int = option(0, "seed of the train/held-out assignment of documents")
    batch_lines: int = option(4096, "lines per tokenizer call (a speed/memory trade-off; the output does not depend on it)")

    def __post_init__(self) -> None:
        self.input = _paths(self.input)
        self.tokenizer, self.out = str(self.tokenizer), str(self.out)
        check_ranges(self)


@dataclass
class PredictConfig:
    texts: tuple[str, ...] = option((), "one text, or two for a pair task", positional=True)
    model: str = option("", "fine-tuned model folder (or a `tokenmix finetune` output directory)")
    file: str = option("", "predict every line of this file instead (text, or text<TAB>text for pairs; - reads stdin)")
    json: str = option("", "write the predictions to this JSON file", output="file")
    input: str = option("", "predict every row of this table (.csv, .tsv or .jsonl with a header) instead; needs --output")
    output: str = option("", "with --input: write the input's columns plus label and probabilities (or score) here "
                             "(.csv, .tsv or .jsonl)", output="file")
    text_column: str = option("", "with --input: the text column (default: the one the model was fine-tuned on, else "
                                  "'text')")
    text_pair_column: str = option("", "with --input: the second text column of a pair task (default: as fine-tuned)")
    batch_size: int = option(64, "examples per batch")
    device: str = option("auto", "auto, cpu, cuda")
    precision: str = option("auto", PRECISION_HELP)
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("missing --model: a folder written by `tokenmix finetune`")
        check_ranges(self)
        check_precision(self.precision)
        if sum(map(bool, (self.texts, self.file, self.input))) != 1:
            raise ValueError('give one or two texts (`tokenmix predict --model DIR "a sentence"`), --file, or --input '
                             'with --output')
        if bool(self.input) != bool(self.output):
            raise ValueError("--input and --output go together: the table to read and the table to write")
        if self.output and os.path.abspath(self.output) == os.path.abspath(self.input):
            raise ValueError("--output is the --input file; write the predictions to another file")
        for table in (self.input, self.output) if self.input else ():  # an unknown format now, not after predicting
            table_format(table)
        if any(not text.strip() for text in self.texts):
            raise ValueError("an empty text; give the text to classify (quote it)")
        if len(self.texts) > 2:
            raise ValueError(f"got {len(self.texts)} texts; a single example has one text or a pair (quote each text)")
