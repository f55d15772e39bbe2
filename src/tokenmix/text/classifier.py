"""Text classification with a fine-tuned model: ``tokenmix predict --model DIR "a sentence" ["a second"]``.

A model folder written by ``tokenmix finetune`` holds the weights, the tokenizer and ``task.json``
(label names, sequence length), so the classifier is rebuilt from the folder alone, with the
same padding policy it was trained with.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tokenmix.benchmarks.examples import Example
from tokenmix.devices import resolve_device
from tokenmix.io.checkpoint import find_model_dir
from tokenmix.io.files import write_json
from tokenmix.models.factory import load_pretrained
from tokenmix.text.configs import PredictConfig
from tokenmix.text.pairs import PairBatches, encode, predict_logits
from tokenmix.text.tokenizer import Tokenizer
from tokenmix.train.finetune import TASK_FILE


class TextClassifier:
    """``TextClassifier.from_pretrained(dir).predict(["great film", ("premise", "hypothesis")])``
    returns one ``{"label", "probabilities"}`` (or ``{"score"}`` for regression) per input."""

    def __init__(self, model: torch.nn.Module, tokenizer: Tokenizer, labels: Sequence[str] | None, max_seq_len: int,
                 fixed_length: bool) -> None:
        self.model, self.tokenizer, self.labels = model.eval(), tokenizer, labels
        self.max_seq_len, self.fixed_length = max_seq_len, fixed_length
        self.truncated = 0  # inputs cut to max_seq_len by the last predict() call

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto") -> TextClassifier:
        directory = find_model_dir(path)
        if not (directory / TASK_FILE).is_file():
            raise ValueError(f"{directory} is not a fine-tuned classifier (no {TASK_FILE}); fine-tune one with "
                             f"`tokenmix finetune` or `tokenmix glue`")
        task = json.loads((directory / TASK_FILE).read_text())
        model = load_pretrained(directory).to(resolve_device(device))
        return cls(model, Tokenizer.load(directory), task["labels"], task["max_seq_len"], task["fixed_length"])

    def batches(self, examples: Sequence[Example], batch_size: int = 64) -> PairBatches:
        """``examples`` encoded and batched with the padding policy the model was fine-tuned with."""
        data = encode(self.tokenizer, examples, self.max_seq_len)
        self.truncated = data.truncated
        fixed = self.max_seq_len if self.fixed_length else None
        return PairBatches(data, batch_size, self.tokenizer.pad_id, fixed)

    def logits(self, examples: Sequence[Example], batch_size: int = 64) -> torch.Tensor:
        """Logits [N, num_labels] of :class:`~tokenmix.benchmarks.examples.Example` records, in order."""
        return predict_logits(self.model, self.batches(examples, batch_size))

    def predict(self, inputs: Sequence[str | Sequence[str]], batch_size: int = 64) -> list[dict[str, Any]]:
        examples = [Example(x) if isinstance(x, str) else Example(x[0], x[1] if len(x) > 1 else None) for x in inputs]
        if not examples:
            return []
        logits = self.logits(examples, batch_size)
        if self.labels is None:
            return [{"score": float(row[0])} for row in logits]
        probabilities = logits.softmax(-1)
        return [{"label": self.labels[int(p.argmax())], "probabilities": dict(zip(self.labels, map(float, p)))}
                for p in probabilities]


def read_inputs(path: str) -> list[tuple[str, ...]]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--file {file} does not exist")
    rows = [tuple(line.split("\t")) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [i for i, row in enumerate(rows, 1) if len(row) > 2]
    if bad:
        raise ValueError(f"{file}: line {bad[0]} has {len(rows[bad[0] - 1])} tab-separated fields; expected a text "
                         f"or a text pair")
    return rows


def run_predict(config: PredictConfig) -> list[dict[str, Any]]:
    classifier = TextClassifier.from_pretrained(config.model, config.device)
    inputs = read_inputs(config.file) if config.file else [tuple(config.texts)]
    results = classifier.predict(inputs, config.batch_size)
    if classifier.truncated:
        print(f"note: {classifier.truncated} input(s) truncated to {classifier.max_seq_len} tokens", file=sys.stderr)
    if config.json:
        write_json(config.json, [{"input": list(x), **r} for x, r in zip(inputs, results)])
    return results
