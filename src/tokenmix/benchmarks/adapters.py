"""One interface over the GLUE and SuperGLUE task families, so that fine-tuning, evaluation,
predictions files and submission files are written once for both (:mod:`tokenmix.train.finetune`).

An adapter reads a split into :class:`Loaded` (examples + what the reader had to skip), turns model
logits into prediction values (a class, or a score for regression and per-candidate tasks), scores
them, and writes them in the benchmark's own formats. Metrics are always computed from exactly the
values that are written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tokenmix.benchmarks import glue_metrics, superglue_metrics
from tokenmix.benchmarks.examples import Example
from tokenmix.benchmarks.glue import GlueTask, label_name, read_split
from tokenmix.benchmarks.superglue import SuperGLUETask, load_split
from tokenmix.benchmarks.tasks import get_benchmark_task
from tokenmix.io.files import atomic_write


@dataclass
class Loaded:
    name: str  # split name (dev, dev_matched, val, test, ...)
    path: str
    examples: list[Example]
    skipped: int = 0
    note: str = ""  # what the reader skipped or repaired, for the log
    answers: dict[Any, Any] = field(default_factory=dict)  # ReCoRD gold answers per query

    @property
    def labelled(self) -> bool:
        return all(e.label is not None for e in self.examples)

    def subset(self, indices: list[int], name: str | None = None) -> Loaded:
        return replace(self, name=name or self.name, examples=[self.examples[i] for i in indices])


class GlueAdapter:
    benchmark = "glue"

    def __init__(self, spec: GlueTask) -> None:
        self.spec = spec
        self.name, self.num_labels, self.is_regression = self.spec.name, self.spec.num_labels, self.spec.is_regression
        self.eval_splits, self.test_splits = self.spec.eval_splits, self.spec.test_splits
        self.score_metric, self.labels = self.spec.score, self.spec.labels

    def has(self, data_dir: str | Path, split: str) -> bool:
        return (Path(data_dir) / self.spec.folder / f"{split}.tsv").is_file()

    def read(self, data_dir: str | Path, split: str) -> Loaded:
        s = read_split(data_dir, self.spec, split)
        return Loaded(split, s.path, s.examples, len(s.skipped), s.describe_skipped())

    def values(self, logits: Any) -> list:
        if self.is_regression:  # rounded as the predictions file writes them
            return [round(v, 3) for v in logits[:, 0].tolist()]
        return logits.argmax(-1).tolist()

    def metrics(self, split: Loaded, values: list) -> dict[str, float]:
        return glue_metrics.compute(self.spec.metrics, values, [e.label for e in split.examples if e.label is not None])

    def _write(self, path: Path, split: Loaded, values: list) -> Path:
        """``index<TAB>prediction``, labels spelt as in the GLUE files (the GLUE server format)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["index\tprediction"] + [f"{e.idx}\t{label_name(self.spec, v)}" for e, v in zip(split.examples, values)]
        return atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))

    def write_predictions(self, out: Path, split: Loaded, values: list) -> Path:
        return self._write(out / f"{split.name}_predictions.tsv", split, values)

    def write_submission(self, directory: Path, split: Loaded, values: list) -> Path:
        return self._write(directory / self.spec.submission_name(split.name), split, values)


class SuperGlueAdapter:
    benchmark = "superglue"

    def __init__(self, spec: SuperGLUETask) -> None:
        self.spec = spec
        self.name, self.num_labels, self.is_regression = self.spec.name, self.spec.num_labels, self.spec.is_regression
        self.eval_splits = ("val",) if "val" in self.spec.files else ()
        self.test_splits, self.score_metric = ("test",), self.spec.main_metric
        self.labels = None if self.is_regression else self.spec.label_names

    def has(self, data_dir: str | Path, split: str) -> bool:
        return self.spec.path(data_dir, split).is_file()

    def read(self, data_dir: str | Path, split: str) -> Loaded:
        s = load_split(data_dir, self.spec, split)
        note = s.describe() if s.malformed or s.warnings else ""
        return Loaded(split, s.source, s.examples, s.malformed, note, s.answers)

    def values(self, logits: Any) -> list:
        return [round(v, 4) for v in logits[:, 0].tolist()] if self.is_regression else logits.argmax(-1).tolist()

    def metrics(self, split: Loaded, values: list) -> dict[str, float]:
        return superglue_metrics.compute_metrics(self.spec, split.examples, values, split.answers)

    def write_predictions(self, out: Path, split: Loaded, values: list) -> Path:
        """The leaderboard's jsonl form for every evaluated split (COPA/ReCoRD: the chosen candidate)."""
        records = superglue_metrics.submission_records(self.spec, split.examples, values)
        return superglue_metrics.write_jsonl(out / f"{split.name}_predictions.jsonl", records)

    def write_submission(self, directory: Path, split: Loaded, values: list) -> Path:
        return superglue_metrics.write_submission(directory, self.spec, split.examples, values)


def get_adapter(benchmark: str, task: str) -> GlueAdapter | SuperGlueAdapter:
    """The adapter of ``task`` of ``benchmark`` (``glue`` or ``superglue``)."""
    spec = get_benchmark_task(benchmark, task)
    return GlueAdapter(spec) if isinstance(spec, GlueTask) else SuperGlueAdapter(spec)
