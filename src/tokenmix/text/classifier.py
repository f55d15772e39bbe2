"""Text classification with a fine-tuned model: ``tokenmix predict --model DIR "a sentence" ["a second"]``,
or a whole table: ``tokenmix predict --model DIR --input in.csv --output out.csv``.

A model folder written by ``tokenmix finetune`` holds the weights, the tokenizer and ``task.json``
(label names, sequence length, length buckets, the columns of your own data, whether it reads text
pairs, the tokenizer's sha256), so the classifier is rebuilt from the folder alone, with the same
padding rule it was trained with, and refuses a replaced tokenizer or inputs of the other kind.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tokenmix.benchmarks.custom import label_value
from tokenmix.benchmarks.examples import Example
from tokenmix.devices import autocast, resolve_device
from tokenmix.io.checkpoint import find_model_dir
from tokenmix.io.files import claim_outputs, read_json, write_json
from tokenmix.models.factory import load_pretrained
from tokenmix.text.configs import PredictConfig
from tokenmix.text.pairs import PairBatches, encode, predict_logits
from tokenmix.text.tables import check_input_file, not_utf8, read_table, require_columns, write_table
from tokenmix.text.tokenizer import Tokenizer, check_tokenizer

# Written by fine-tuning beside the weights: labels, lengths and padding rule, so a folder predicts alone.
TASK_FILE = "task.json"


def check_task_tokenizer(directory: Path, task: dict[str, Any]) -> None:
    """The tokenizer beside fine-tuned weights must be the one they were tuned with (the sha256 in
    ``task.json``; folders written before it was recorded are taken as they are)."""
    if task.get("tokenizer_sha256"):
        check_tokenizer(directory, task["tokenizer_sha256"], f"the model in {directory} was fine-tuned with",
                        "put back the tokenizer.json and tokenizer_config.json it was saved with, or fine-tune again")


def check_pairs(examples: Sequence[Example], pair: bool | None, task: str) -> None:
    """Refuse single texts for a model tuned on text pairs and pairs for one tuned on single texts:
    it would score them all the same, meaninglessly (``pair`` None: an older folder, not recorded)."""
    if pair is None:
        return
    wrong = next((i for i, e in enumerate(examples, 1) if (e.text_b is not None) != pair), None)
    if wrong is None:
        return
    if pair:
        raise ValueError(f"the model was fine-tuned on text pairs ({task}); give two texts per example (two texts, "
                         f"text<TAB>text lines in --file, or --text-pair-column with --input): input {wrong} has one")
    raise ValueError(f"the model was fine-tuned on single texts ({task}); give one text per example (one text, lines "
                     f"without a tab in --file, no --text-pair-column with --input): input {wrong} has two")


class TextClassifier:
    """``TextClassifier.from_pretrained(dir).predict(["great film", ("premise", "hypothesis")])``
    returns one ``{"label", "probabilities"}`` (or ``{"score"}`` for regression) per input."""

    def __init__(self, model: torch.nn.Module, tokenizer: Tokenizer, labels: Sequence[str] | None, max_seq_len: int,
                 fixed_length: bool, buckets: Sequence[int] | None = None, columns: dict[str, Any] | None = None,
                 pair: bool | None = None, task: str = "", label_type: str = "string") -> None:
        """``buckets``: the per-example lengths of a parameter-free mixing (see
        :func:`~tokenmix.text.pairs.padding_policy`); ``columns``: the own-data columns it was tuned on;
        ``pair``: whether it was tuned on text pairs (None: unknown, inputs of either kind accepted);
        ``label_type``: ``integer`` or ``boolean`` gives predicted labels that type, as the training file had."""
        self.model, self.tokenizer, self.labels, self.label_type = model.eval(), tokenizer, labels, label_type
        self.max_seq_len, self.fixed_length, self.buckets = max_seq_len, fixed_length, buckets
        self.columns, self.pair, self.task = columns or {}, pair, task
        self.truncated = 0  # inputs cut to max_seq_len by the last predict() call

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto") -> TextClassifier:
        directory = find_model_dir(path)
        if not (directory / TASK_FILE).is_file():
            raise ValueError(f"{directory} is not a fine-tuned classifier (no {TASK_FILE}); fine-tune one with "
                             f"`tokenmix finetune` or `tokenmix glue`")
        task = read_json(directory / TASK_FILE)
        check_task_tokenizer(directory, task)
        model = load_pretrained(directory).to(resolve_device(device))
        return cls(model, Tokenizer.load(directory), task["labels"], task["max_seq_len"], task["fixed_length"],
                   task.get("length_buckets"), task.get("columns"), task.get("pair"), task.get("task", ""),
                   task.get("label_type") or "string")

    def batches(self, examples: Sequence[Example], batch_size: int = 64) -> PairBatches:
        """``examples`` encoded and batched with the padding policy the model was fine-tuned with."""
        check_pairs(examples, self.pair, self.task)
        data = encode(self.tokenizer, examples, self.max_seq_len)
        self.truncated = data.truncated
        fixed = self.max_seq_len if self.fixed_length else None
        return PairBatches(data, batch_size, self.tokenizer.pad_id, fixed, buckets=self.buckets)

    def logits(self, examples: Sequence[Example], batch_size: int = 64) -> torch.Tensor:
        """Logits [N, num_labels] of :class:`~tokenmix.benchmarks.examples.Example` records, in order."""
        return predict_logits(self.model, self.batches(examples, batch_size))

    def predict(self, inputs: Sequence[str | Sequence[str]], batch_size: int = 64,
                progress: bool = False) -> list[dict[str, Any]]:
        """``progress``: show a progress bar over the batches (``predict --input``)."""
        examples = [Example(x) if isinstance(x, str) else Example(x[0], x[1] if len(x) > 1 else None) for x in inputs]
        if not examples:
            return []
        logits = predict_logits(self.model, self.batches(examples, batch_size), progress)
        if self.labels is None:
            return [{"score": float(row[0])} for row in logits]
        probabilities = logits.softmax(-1)
        return [{"label": label_value(self.labels[int(p.argmax())], self.label_type),
                 "probabilities": dict(zip(self.labels, map(float, p)))} for p in probabilities]


def read_inputs(path: str) -> list[tuple[str, ...]]:
    """The texts (or tab-separated pairs) of ``predict --file`` (``-``: standard input, so that a pipe can
    feed it), one per non-blank line; a file without one is an error, as an empty ``--input`` table is,
    rather than a run that predicts nothing."""
    file = Path("-") if path == "-" else check_input_file(path, "--file")
    try:
        text = sys.stdin.buffer.read().decode("utf-8-sig") if path == "-" else file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise not_utf8(file, err) from None
    numbered = [(number, tuple(line.split("\t")))  # numbers of the file's lines, blank ones counted
                for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    for number, row in numbered:
        if len(row) > 2:
            raise ValueError(f"{file}: line {number} has {len(row)} tab-separated fields; expected a text or a text pair")
    if not numbered:
        raise ValueError(f"--file {file} holds no text; give one text (or text<TAB>text) per line")
    return [row for _, row in numbered]


def table_inputs(config: PredictConfig, classifier: TextClassifier) -> tuple[list[str], list[dict[str, Any]],
                                                                             list[tuple[str, ...]]]:
    """(columns, rows, inputs) of ``--input``: the text (pair) columns given, else those the model was tuned on."""
    columns, rows = read_table(config.input)
    text = config.text_column or classifier.columns.get("text") or "text"
    pair = config.text_pair_column or classifier.columns.get("pair") or ""
    require_columns(columns, {"--text-column": text, "--text-pair-column": pair}, config.input)
    inputs = []
    for i, row in enumerate(rows, 1):
        texts = (row.get(text), row.get(pair)) if pair else (row.get(text),)
        if not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError(f"{config.input} row {i}: no text in column(s) {text!r}{f', {pair!r}' if pair else ''}; "
                             f"every row needs one")
        inputs.append(tuple(str(t) for t in texts))
    return columns, rows, inputs


def output_rows(columns: list[str], rows: list[dict[str, Any]], results: list[dict[str, Any]],
                flat: bool) -> list[dict[str, Any]]:
    """Each input row plus its ``label`` and probabilities (``p_<label>`` columns when ``flat``) or ``score``;
    an added name the input already uses gets a ``predicted_`` prefix, so no input column is overwritten."""
    if flat:
        results = [{"label": r["label"], **{f"p_{k}": v for k, v in r["probabilities"].items()}} if "label" in r else r
                   for r in results]
    return [{**row, **{f"predicted_{k}" if k in columns else k: v for k, v in result.items()}}
            for row, result in zip(rows, results)]


def output_columns(columns: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """The input's columns (every row's keys, in first-seen order: a JSON Lines row may add a key) and then
    the predicted ones, so a CSV/TSV output drops no key that only later rows hold."""
    return list(dict.fromkeys([*columns, *(key for row in rows for key in row)]))


def run_predict(config: PredictConfig) -> list[dict[str, Any]]:
    claim_outputs(config)  # an existing output is refused unless config.overwrite, before any work
    classifier = TextClassifier.from_pretrained(config.model, config.device)
    if config.input:
        columns, rows, inputs = table_inputs(config, classifier)
    else:
        inputs = read_inputs(config.file) if config.file else [tuple(config.texts)]
    with autocast(config.precision, next(classifier.model.parameters()).device):
        results = classifier.predict(inputs, config.batch_size, progress=bool(config.input))
    if classifier.truncated:
        print(f"note: {classifier.truncated} input(s) truncated to {classifier.max_seq_len} tokens", file=sys.stderr)
    if config.json:
        write_json(config.json, [{"input": list(x), **r} for x, r in zip(inputs, results)])
    if config.output:
        flat = not config.output.endswith((".jsonl", ".json"))
        written = output_rows(columns, rows, results, flat)
        write_table(config.output, output_columns(columns, written), written)
    return results
