"""Your own task: a train / validation (/ test) table with a text column, an optional second text column
and a label column, behind the same adapter interface as GLUE and SuperGLUE
(:mod:`tokenmix.benchmarks.adapters`), so fine-tuning, the sweep, metrics and predictions files are
shared.

Labels are classes (strings, integers or booleans; the names are kept in the order sorted from the
training split and saved with the model) or, with ``regression``, numbers. Class labels mean the same
in every format, so a CSV and a JSON Lines file of one task agree: a whole number written as a float
(``1.0``) is the integer class ``"1"``, and a JSON ``false``/``true`` is the class ``"false"``/``"true"``
(ids 0 and 1, as the CSV strings ``false``/``true`` are), written back so in predictions files. A
number with a fraction (``0.5``) is refused as a class: it asks for ``regression``. Every split is read
and checked when the adapter is built, before anything is trained or written: a missing column, an
empty table, a row without a text or a label, mixed label types, a validation label that training
never saw or a regression target that is not a finite number is one error naming the file, the row
and the fix. A test table whose label column is empty in every row is predicted, not scored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
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


# A number as CSV and JSON write one: 3, -1, 0.5, 1.0, 2e3 (not "nan", "inf", "1_000" or "½", which float() takes).
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric CSV/TSV cell, else None (a boolean is not a number)."""
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def label_kind(value: Any) -> str:
    """``integer`` (also ``1.0`` and ``"1.0"``), ``fraction`` (``0.5``), ``boolean``, ``string`` or the JSON type:
    a CSV cell and a JSON value of one label get one kind, whichever format the table is in."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str) and not NUMBER.fullmatch(value.strip()):
        return "string"
    if isinstance(value, int | float | str):
        exact = Decimal(str(value).strip())
        if not exact.is_finite():  # a JSON NaN or Infinity
            return "non-finite number"
        return "integer" if exact == exact.to_integral_value() else "fraction"
    return type(value).__name__


def label_name(value: Any) -> str:
    """The class name of a label: ``"1"`` for 1, 1.0 and "1.0"; ``"true"``/``"false"`` for JSON booleans."""
    kind = label_kind(value)
    if kind == "boolean":
        return "true" if value else "false"
    return str(int(Decimal(str(value).strip()))) if kind == "integer" else str(value).strip()


def label_value(name: str, kind: str) -> str | int | bool:
    """A class name as the label it was read from (the inverse of :func:`label_name`): predictions written
    as JSON carry ``1`` and ``true`` where the training file had them, not ``"1"`` and ``"true"``."""
    if kind == "integer":
        return int(name)
    return name == "true" if kind == "boolean" else name


def blank(value: Any) -> bool:
    """No value: a missing JSON key or null, or an empty (or all-space) CSV/TSV cell."""
    return value is None or (isinstance(value, str) and not value.strip())


def class_names(values: list[Any], source: str, column: str) -> list[str]:
    """The label names of a training split, sorted (numerically for integer labels; ``false`` before
    ``true``); a row without a label is an error naming it (an empty cell would otherwise become a class
    of its own), and so is a number with a fraction, which asks for ``--regression`` rather than a class."""
    missing = next((i for i, v in enumerate(values, 1) if blank(v)), None)
    if missing is not None:
        raise ValueError(f"{source} row {missing}: no label in column {column!r}; fill it in or remove the row")
    kinds = [label_kind(v) for v in values]
    if "fraction" in kinds and set(kinds) <= {"integer", "fraction"}:
        row = kinds.index("fraction") + 1
        raise ValueError(f"{source} row {row}: label {values[row - 1]!r} in column {column!r} is not a whole number; "
                         f"pass --regression to predict numbers (classes are strings, integers or true/false)")
    if len(set(kinds)) > 1:
        raise ValueError(f"{source}: column {column!r} mixes label types ({', '.join(sorted(set(kinds)))}); use one "
                         f"type (all integers, all strings or all true/false), or --regression for numeric targets")
    if kinds[0] not in ("integer", "string", "boolean"):
        raise ValueError(f"{source}: column {column!r} holds {kinds[0]} labels; classes must be strings, integers or "
                         f"true/false (use --regression for numeric targets)")
    names = {label_name(v) for v in values}
    return sorted(names, key=int) if kinds[0] == "integer" else sorted(names)


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
        train_labels = [row.get(columns.label) for row in train.rows]
        self.labels = None if columns.regression else class_names(train_labels, train.source, columns.label)
        # integer, boolean or string (checked one kind by class_names); None for regression
        self.label_type = None if self.labels is None else label_kind(train_labels[0])
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
            target = number(value)
            if target is None:
                raise ValueError(f"{where}: regression target {value!r} in column {self.columns.label!r} is not a "
                                 f"number; fix the row or drop --regression to classify")
            return target
        name = label_name(value)
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

    def prediction(self, value: int | float) -> str | int | bool | float:
        """A prediction as written: the class as the training file gave it, or the score."""
        if self.labels is None or self.label_type is None:
            return float(value)
        return label_value(self.labels[int(value)], self.label_type)

    def write_predictions(self, out: Path, split: Loaded, values: list) -> Path:
        """The split's rows with a ``prediction`` column, in the input's format (JSON Lines for a dataset)."""
        table = self.tables[split.name]
        suffix = Path(table.source).suffix if not table.source.startswith("datasets:") else ".jsonl"
        rows = [{**row, "prediction": self.prediction(v)} for row, v in zip(table.rows, values)]
        return write_table(out / f"{split.name}_predictions{suffix}", [*table.columns, "prediction"], rows)

    def write_submission(self, directory: Path, split: Loaded, values: list) -> Path:
        return self.write_predictions(directory, split, values)
