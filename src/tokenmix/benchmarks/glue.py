"""GLUE tasks: specs, readers for the official TSV layout and for Hugging Face ``datasets``, and the
columns of a results table.

The official files are tab separated with no quoting at all (a ``"`` inside a sentence is just a
character), so they are read with ``csv.QUOTE_NONE``; reading them with default CSV quoting silently
merges rows, the classic GLUE loader bug. Rows with the wrong number of fields are counted and
reported with their line numbers, never dropped silently; a label outside the task's label set is
an error. Text fields follow the official FNet input order (MNLI: hypothesis first).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenmix.benchmarks.examples import Example, lookup_task


@dataclass(frozen=True)
class GlueTask:
    name: str  # our name, used on the command line
    folder: str  # folder in the official GLUE layout
    text_a: str | int  # column name (headered files) or index (CoLA)
    text_b: str | int | None
    label: str | int
    labels: tuple[str, ...] | None  # label strings as in the files; None = regression
    metrics: tuple[str, ...]
    score: str  # the paper's per-task number (FNet paper Table 2)
    submission: str  # GLUE server file name for the test predictions
    eval_splits: tuple[str, ...] = ("dev",)
    test_splits: tuple[str, ...] = ("test",)
    hf_name: str = ""
    hf_text: tuple[str, ...] = ()
    hf_labels: tuple[str, ...] | None = None  # label names of the HF dataset's integer labels
    test_columns: dict[str, str | int] = field(default_factory=dict)  # overrides for test.tsv

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    def submission_name(self, split: str) -> str:
        return {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"}.get(split, self.submission)


_BINARY, _NLI2 = ("0", "1"), ("entailment", "not_entailment")
TASKS: dict[str, GlueTask] = {t.name: t for t in (
    GlueTask("cola", "CoLA", 3, None, 1, _BINARY, ("mcc", "accuracy"), "mcc", "CoLA.tsv",
             hf_name="cola", hf_text=("sentence",), test_columns={"text_a": "sentence"}),
    GlueTask("sst2", "SST-2", "sentence", None, "label", _BINARY, ("accuracy",), "accuracy", "SST-2.tsv",
             hf_name="sst2", hf_text=("sentence",)),
    GlueTask("mrpc", "MRPC", "#1 String", "#2 String", "Quality", _BINARY, ("f1", "accuracy"), "f1", "MRPC.tsv",
             hf_name="mrpc", hf_text=("sentence1", "sentence2")),
    GlueTask("qqp", "QQP", "question1", "question2", "is_duplicate", _BINARY, ("f1", "accuracy"), "f1", "QQP.tsv",
             hf_name="qqp", hf_text=("question1", "question2")),
    GlueTask("stsb", "STS-B", "sentence1", "sentence2", "score", None, ("pearson", "spearman"), "spearman",
             "STS-B.tsv", hf_name="stsb", hf_text=("sentence1", "sentence2")),
    GlueTask("mnli", "MNLI", "sentence2", "sentence1", "gold_label", ("contradiction", "entailment", "neutral"),
             ("accuracy",), "accuracy", "MNLI.tsv", eval_splits=("dev_matched", "dev_mismatched"),
             test_splits=("test_matched", "test_mismatched"), hf_name="mnli", hf_text=("hypothesis", "premise"),
             hf_labels=("entailment", "neutral", "contradiction")),
    GlueTask("qnli", "QNLI", "question", "sentence", "label", _NLI2, ("accuracy",), "accuracy", "QNLI.tsv",
             hf_name="qnli", hf_text=("question", "sentence"), hf_labels=_NLI2),
    GlueTask("rte", "RTE", "sentence1", "sentence2", "label", _NLI2, ("accuracy",), "accuracy", "RTE.tsv",
             hf_name="rte", hf_text=("sentence1", "sentence2"), hf_labels=_NLI2),
    GlueTask("wnli", "WNLI", "sentence1", "sentence2", "label", _BINARY, ("accuracy",), "accuracy", "WNLI.tsv",
             hf_name="wnli", hf_text=("sentence1", "sentence2")),
)}
# The paper's average (FNet Table 2): MNLI-m and MNLI-mm count as two entries, WNLI is left out.
AVERAGE_CONVENTION = ("mean of the per-task scores (CoLA MCC, MRPC/QQP F1, STS-B Spearman, accuracy otherwise), "
                      "MNLI-m and MNLI-mm counted separately, WNLI excluded, as in the FNet paper's Table 2")


# Columns of a GLUE results table in the order of the FNet paper's Table 2 (MNLI matched and
# mismatched apart; WNLI, which the paper leaves out, last), each headed by the task's folder name.
GLUE_TABLE_COLUMNS = {"mnli-m": "MNLI-m", "mnli-mm": "MNLI-mm",
                 **{name: TASKS[name].folder for name in ("qqp", "qnli", "sst2", "cola", "stsb", "mrpc", "rte", "wnli")}}


def get_glue_task(name: str) -> GlueTask:
    return lookup_task(TASKS, name, "GLUE")


def column_title(column: str) -> str:
    """The header of a results column: a :data:`GLUE_TABLE_COLUMNS` header, else a task's folder name."""
    return GLUE_TABLE_COLUMNS.get(column) or (TASKS[column].folder if column in TASKS else column)


@dataclass
class Split:
    """The examples of one file, plus what had to be skipped or truncated on the way."""

    task: str
    name: str
    path: str
    examples: list[Example]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    @property
    def labelled(self) -> bool:
        return all(e.label is not None for e in self.examples)

    def describe_skipped(self) -> str:
        if not self.skipped:
            return ""
        lines = ", ".join(str(line) for line, _ in self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else "")
        return (f"{self.path}: skipped {len(self.skipped)} malformed row(s) (lines {lines}; "
                f"{self.skipped[0][1]})")


def split_path(data_dir: str | Path, task: GlueTask, split: str) -> Path:
    folder = Path(data_dir) / task.folder
    if not folder.is_dir():
        found = sorted(p.name for p in Path(data_dir).iterdir() if p.is_dir()) if Path(data_dir).is_dir() else []
        raise FileNotFoundError(f"no {task.folder}/ folder in {data_dir} for task {task.name} "
                                f"(found: {', '.join(found) or 'nothing'}); point --data-dir at a GLUE folder")
    path = folder / f"{split}.tsv"
    if not path.is_file():
        present = sorted(p.stem for p in folder.glob("*.tsv"))
        raise FileNotFoundError(f"{task.name}: missing split {path} (present: {', '.join(present) or 'none'})")
    return path


SCORE_RANGE = (0.0, 5.0)  # of STS-B, the one regression task


def _parse_label(task: GlueTask, raw: str, where: str) -> int | float:
    raw = raw.strip()
    if task.labels is None:  # regression: STS-B similarity scores
        try:
            score = float(raw)
        except ValueError:
            raise ValueError(f"{where}: score {raw!r} is not a number") from None
        if not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:  # also refuses nan, which would poison training
            raise ValueError(f"{where}: score {raw!r} is outside the {task.name} range "
                             f"[{SCORE_RANGE[0]:g}, {SCORE_RANGE[1]:g}]; fix that line")
        return score
    if raw not in task.labels:
        raise ValueError(f"{where}: label {raw!r} is not a {task.name} label (valid: {', '.join(task.labels)})")
    return task.labels.index(raw)


def read_split(data_dir: str | Path, task: GlueTask | str, split: str) -> Split:
    """Read ``DATA_DIR/<TASK>/<split>.tsv``. Test files have no label column (labels are None)."""
    task = get_glue_task(task) if isinstance(task, str) else task
    path = split_path(data_dir, task, split)
    is_test = split.startswith("test")
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    headered = isinstance(task.text_a, str) or is_test
    columns = task.test_columns if is_test else {}  # overrides of the task's columns
    header, body, first_line = (rows[0], rows[1:], 2) if headered and rows else ([], rows, 1)
    index = {name: i for i, name in enumerate(header)}

    def position(column: str | int) -> int:
        if isinstance(column, int):
            return column
        if column not in index:
            raise ValueError(f"{path}: no column {column!r} in the header ({', '.join(header)}); "
                             f"is this the {task.folder} {split} file of the official GLUE layout?")
        return index[column]

    a_col = position(columns.get("text_a", task.text_a))
    b_name = columns.get("text_b", task.text_b)
    b_col = None if b_name is None else position(b_name)
    label_col = None if is_test else position(columns.get("label", task.label))
    idx_col = next((index[n] for n in ("index", "id") if n in index), None)
    width = len(header) if header else max((len(r) for r in body), default=0)
    examples: list[Example] = []
    skipped: list[tuple[int, str]] = []
    for number, row in enumerate(body, start=first_line):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            skipped.append((number, f"{len(row)} fields instead of {width}"))
            continue
        where = f"{path}:{number}"
        label = None if label_col is None else _parse_label(task, row[label_col], where)
        examples.append(Example(text_a=row[a_col], text_b=None if b_col is None else row[b_col],
                                label=label, idx=row[idx_col] if idx_col is not None else len(examples)))
    if not examples:
        raise ValueError(f"{path} has no readable rows")
    return Split(task.name, split, str(path), examples, skipped)


def read_glue_dataset(dataset: Any, task: GlueTask | str, split: str = "validation") -> Split:
    """Examples from a Hugging Face ``datasets.Dataset`` of the ``glue`` dataset (columns as on the hub:
    ``sentence``/``sentence1``/``premise``..., ``label`` as an integer, -1 for test rows, ``idx``)."""
    task = get_glue_task(task) if isinstance(task, str) else task
    missing = [c for c in (*task.hf_text, "label") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"the dataset has no column(s) {missing} needed for {task.name} "
                         f"(columns: {dataset.column_names}); pass the {task.hf_name!r} configuration of 'glue'")
    feature = getattr(dataset, "features", {}).get("label")
    names = tuple(getattr(feature, "names", None) or task.hf_labels or task.labels or ())
    examples: list[Example] = []
    for i, row in enumerate(dataset):
        raw = row["label"]
        if raw is None or (not task.is_regression and raw < 0):
            label = None
        elif task.is_regression:
            label = float(raw)
        else:
            label = _parse_label(task, names[raw] if names else str(raw), f"{task.name} {split} row {i}")
        texts = [row[c] for c in task.hf_text]
        examples.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label, row.get("idx", i)))
    return Split(task.name, split, f"datasets:{task.hf_name}/{split}", examples)


def label_name(task: GlueTask, value: int | float) -> str:
    """A prediction as written in GLUE files and submissions (``entailment``, ``1``, ``3.250``)."""
    return f"{float(value):.3f}" if task.labels is None else task.labels[int(value)]


# The dev split behind each results column (MNLI has two).
COLUMN_SPLITS = {"mnli-m": ("mnli", "dev_matched"), "mnli-mm": ("mnli", "dev_mismatched")}
