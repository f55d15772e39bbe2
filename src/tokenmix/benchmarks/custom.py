"""Your own task: a train / validation (/ test) table with a text column, an optional second text column
and a label column, behind the same adapter interface as GLUE and SuperGLUE
(:mod:`tokenmix.benchmarks.adapters`), so fine-tuning, the sweep, metrics and predictions files are
shared.

Labels are classes (strings, or integers; the names are kept in the order sorted from the training
split and saved with the model) or, with ``regression``, numbers. Every split is read and checked
when the adapter is built, before anything is trained or written: a missing column, an empty table,
a row without a text or a label, mixed label types, a validation label that training never saw or a
non-numeric regression target is one error naming the file, the row and the fix. A test table whose
label column is empty in every row is predicted, not scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenmix.benchmarks import glue_metrics
from tokenmix.benchmarks.adapters import Loaded
from tokenmix.benchmarks.examples import Example
from tokenmix.text.tables import check_input_file, dataset_rows, read_table, require_columns, write_table

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TableColumns:
    """Which columns hold what, and whether the label is a number to regress."""

    text: str
    label: str
    pair: str = ""
    regression: bool = False


@dataclass
class Table:
    source: str  # a path, or datasets:<split>
    columns: list[str]
    rows: list[dict[str, Any]]


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()


def blank(value: Any) -> bool:
    """No value: a missing JSON key or null, or an empty (or all-space) CSV/TSV cell."""
    return value is None or (isinstance(value, str) and not value.strip())


def class_names(values: list[Any], source: str, column: str) -> list[str]:
    """The label names of a training split, sorted (numerically for integer labels); a row without a
    label is an error naming it (an empty cell would otherwise become a class of its own)."""
    missing = next((i for i, v in enumerate(values, 1) if blank(v)), None)
    if missing is not None:
        raise ValueError(f"{source} row {missing}: no label in column {column!r}; fill it in or remove the row")
    kinds = {"integer" if _is_integer(v) else "string" if isinstance(v, str) else type(v).__name__ for v in values}
    if len(kinds) > 1:
        raise ValueError(f"{source}: column {column!r} mixes label types ({', '.join(sorted(kinds))}); use one type "
                         f"(all integers or all strings), or --regression for numeric targets")
    if kinds - {"integer", "string"}:
        raise ValueError(f"{source}: column {column!r} holds {kinds.pop()} labels; classes must be strings or integers "
                         f"(use --regression for numeric targets)")
    names = {str(v).strip() for v in values}
    return sorted(names, key=int) if kinds == {"integer"} else sorted(names)


class TableAdapter:
    """The adapter of a user task: ``TableAdapter(columns, {"train": path_or_dataset, "validation": ...})``."""

    benchmark = "custom"

    def __init__(self, columns: TableColumns, sources: dict[str, Any], name: str = "custom") -> None:
        if "train" not in sources or "validation" not in sources:
            raise ValueError("your own data needs a training and a validation split (--train-file and --validation-file)")
        self.columns, self.name = columns, name
        self.tables = {split: self._load(split, source) for split, source in sources.items() if source is not None}
        train = self.tables["train"]
        self.is_regression = columns.regression
        self.labels = None if columns.regression else class_names(
            [row.get(columns.label) for row in train.rows], train.source, columns.label)
        self.num_labels = 1 if self.labels is None else len(self.labels)
        if self.labels is not None and len(self.labels) < 2:
            raise ValueError(f"{train.source}: column {columns.label!r} has a single class {self.labels[0]!r}; "
                             f"classification needs at least two")
        test = self.tables.get("test")  # scored when it has labels; a label column left empty: predicted only
        labelled_test = test is not None and any(not blank(row.get(columns.label)) for row in test.rows)
        self.eval_splits = ("validation", "test") if labelled_test else ("validation",)
        self.test_splits = ("test",) if test is not None and not labelled_test else ()
        self.score_metric = "pearson" if columns.regression else "accuracy"
        self.metric_names = ("pearson", "spearman") if columns.regression else (
            ("accuracy", "f1") if self.num_labels == 2 else ("accuracy",))
        self.loaded = {split: self._examples(split) for split in self.tables}

    def _load(self, split: str, source: Any) -> Table:
        if isinstance(source, str | Path):
            columns, rows = read_table(check_input_file(source, f"--{split}-file"))
            where = str(source)
        else:
            columns, rows = dataset_rows(source)
            where = f"datasets:{split}"
        wanted = {"--text-column": self.columns.text, "--text-pair-column": self.columns.pair}
        if split != "test":
            wanted["--label-column"] = self.columns.label
        require_columns(columns, wanted, where)
        return Table(where, columns, rows)

    def _label(self, value: Any, where: str) -> int | float:
        if blank(value):
            raise ValueError(f"{where}: no label in column {self.columns.label!r}; fill it in or remove the row")
        if self.labels is None:
            try:
                if isinstance(value, bool):
                    raise TypeError
                return float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: regression target {value!r} in column {self.columns.label!r} is not a "
                                 f"number; fix the row or drop --regression to classify") from None
        name = str(value).strip() if value is not None else None
        if name not in self.labels:
            raise ValueError(f"{where}: label {value!r} never occurs in the training split (its labels: "
                             f"{', '.join(self.labels)}); add examples of it to the training file or remove the row")
        return self.labels.index(name)

    def _text(self, row: dict[str, Any], column: str, where: str) -> str:
        value = row.get(column)
        if not isinstance(value, str):
            raise ValueError(f"{where}: column {column!r} is {value!r}, not a text; every row needs a text there")
        if not value.strip():  # an empty cell: the model would learn (or predict) from [CLS] [SEP] alone
            raise ValueError(f"{where}: column {column!r} is empty; every row needs a text there (fill it in or "
                             f"remove the row)")
        return value

    def _examples(self, split: str) -> Loaded:
        table, c = self.tables[split], self.columns
        labelled = split != "test" or "test" in self.eval_splits
        examples = []
        for i, row in enumerate(table.rows):
            where = f"{table.source} row {i + 1}"
            examples.append(Example(self._text(row, c.text, where), self._text(row, c.pair, where) if c.pair else None,
                                    self._label(row.get(c.label), where) if labelled else None, i))
        return Loaded(split, table.source, examples)

    def has(self, data_dir: Any, split: str) -> bool:
        return split in self.tables

    def read(self, data_dir: Any, split: str) -> Loaded:
        return self.loaded[split]

    def values(self, logits: Any) -> list:
        return logits[:, 0].tolist() if self.is_regression else logits.argmax(-1).tolist()

    def metrics(self, split: Loaded, values: list) -> dict[str, float]:
        return glue_metrics.compute(self.metric_names, values, [float(e.label) for e in split.examples
                                                                if e.label is not None])

    def prediction(self, value: int | float) -> str | float:
        """A prediction as written: the class name, or the score."""
        return float(value) if self.labels is None else self.labels[int(value)]

    def write_predictions(self, out: Path, split: Loaded, values: list) -> Path:
        """The split's rows with a ``prediction`` column, in the input's format (JSON Lines for a dataset)."""
        table = self.tables[split.name]
        suffix = Path(table.source).suffix if not table.source.startswith("datasets:") else ".jsonl"
        rows = [{**row, "prediction": self.prediction(v)} for row, v in zip(table.rows, values)]
        return write_table(out / f"{split.name}_predictions{suffix}", [*table.columns, "prediction"], rows)

    def write_submission(self, directory: Path, split: Loaded, values: list) -> Path:
        return self.write_predictions(directory, split, values)
