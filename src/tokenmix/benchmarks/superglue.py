"""SuperGLUE data: the official jsonl release (``DIR/BoolQ/train.jsonl``, ..., ``DIR/AX-b/AX-b.jsonl``)
and Hugging Face ``super_glue`` datasets, both turned into :class:`~tokenmix.benchmarks.examples.Example`
lists framed as the official Sparse Mixers code frames them (``input_pipeline.py``).

The official pipeline feeds up to three segments ``[CLS] A [SEP] B [SEP] C [SEP]``; an ``Example``
holds a text pair, so a third segment is joined to the second with :data:`SEGMENT_SEP`
(``text_a = A``, ``text_b = "B | C"``): the segment order and the truncation priority (the long
passage comes last) stay as officially. WiC and WSC additionally mark their word/spans in the text
(``*word*``, ``[noun]`` and ``*pronoun*``) so that the encoder sees *where* they are.

Both sources go through the same framing code (an official record is first flattened into the
Hugging Face row layout), so a file and the equivalent ``datasets.Dataset`` give identical examples.
Malformed records are never skipped silently: ``strict=True`` raises on the first one, naming
``file:line:field``; otherwise they are counted and described in :attr:`SuperGLUESplit.problems`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tokenmix.benchmarks.examples import Example, lookup_task

SEGMENT_SEP = " | "
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"dev": "val", "validation": "val"}
_OFFICIAL_FILES = {split: f"{split}.jsonl" for split in SPLITS}


@dataclass(frozen=True)
class SuperGLUETask:
    """What a SuperGLUE task is: where its files are, how labels map to ints (index in
    ``label_names``, the names the leaderboard expects in submission files), the model head size and
    the metrics. ``kind``: ``classification`` (one example per record), ``multirc`` (one binary
    example per answer, grouped by question), ``multiple_choice`` (one example per candidate with a
    0/1 label, scored as a scalar; the best candidate of each group is the prediction)."""

    name: str
    dirname: str
    kind: str
    label_names: tuple[str, ...]
    num_labels: int
    metrics: tuple[str, ...]
    main_metric: str
    fields: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=lambda: dict(_OFFICIAL_FILES), compare=False)
    evaluate_with: str | None = None

    @property
    def is_regression(self) -> bool:
        """COPA/ReCoRD: one scalar score per candidate, trained as regression on its 0/1 label (officially)."""
        return self.num_labels == 1

    def path(self, data_dir: str | Path, split: str) -> Path:
        return Path(data_dir) / self.dirname / self.files[self.split_name(split)]

    def split_name(self, split: str) -> str:
        name = _SPLIT_ALIASES.get(split, split)
        if name not in self.files:
            raise ValueError(f"SuperGLUE {self.dirname} has no split {split!r}; valid splits: "
                             f"{', '.join(self.files)}")
        return name


_BOOL = ("false", "true")
_NLI2 = ("entailment", "not_entailment")


def _diagnostic(name: str, dirname: str, metrics: tuple[str, ...], main: str,
                fields: tuple[str, ...]) -> SuperGLUETask:
    return SuperGLUETask(name, dirname, "classification", _NLI2, 2, metrics, main, fields,
                         files={"test": f"{dirname}.jsonl"}, evaluate_with="rte")


TASKS: dict[str, SuperGLUETask] = {t.name: t for t in (
    SuperGLUETask("boolq", "BoolQ", "classification", _BOOL, 2, ("accuracy",), "accuracy",
                  ("question", "passage")),
    SuperGLUETask("cb", "CB", "classification", ("entailment", "contradiction", "neutral"), 3,
                  ("accuracy", "f1"), "score", ("premise", "hypothesis")),
    SuperGLUETask("copa", "COPA", "multiple_choice", ("0", "1"), 1, ("accuracy",), "accuracy",
                  ("premise", "choice1", "choice2", "question")),
    SuperGLUETask("multirc", "MultiRC", "multirc", ("0", "1"), 2, ("f1a", "em"), "score",
                  ("paragraph", "question", "answer")),
    SuperGLUETask("record", "ReCoRD", "multiple_choice", (), 1, ("f1", "em"), "score",
                  ("passage", "query", "entities", "answers")),
    SuperGLUETask("rte", "RTE", "classification", _NLI2, 2, ("accuracy",), "accuracy",
                  ("premise", "hypothesis")),
    SuperGLUETask("wic", "WiC", "classification", _BOOL, 2, ("accuracy",), "accuracy",
                  ("word", "sentence1", "sentence2", "start1", "end1", "start2", "end2")),
    SuperGLUETask("wsc", "WSC", "classification", ("False", "True"), 2, ("accuracy",), "accuracy",
                  ("text", "span1_index", "span1_text", "span2_index", "span2_text")),
    _diagnostic("axb", "AX-b", ("mcc",), "mcc", ("sentence1", "sentence2")),
    _diagnostic("axg", "AX-g", ("accuracy", "gender_parity"), "accuracy", ("premise", "hypothesis")),
)}
BENCHMARK_TASKS = tuple(name for name, task in TASKS.items() if task.evaluate_with is None)
# Columns of a SuperGLUE results table (the benchmark tasks), each headed by the task's folder name.
SUPERGLUE_TABLE_COLUMNS = {name: TASKS[name].dirname for name in BENCHMARK_TASKS}


def get_superglue_task(name: str) -> SuperGLUETask:
    """The task spec by name, case-insensitive, with or without dashes (``boolq``, ``BoolQ``, ``AX-b``)."""
    return lookup_task(TASKS, name, "SuperGLUE")


@dataclass
class SuperGLUESplit:
    """One split read from a file or a ``datasets.Dataset``: the examples plus what the reader saw.
    ``answers`` holds ReCoRD's gold answer texts per query (the metric's reference: a gold answer need
    not be a candidate entity); ``warnings`` counts usable oddities (ReCoRD answers that are not
    candidate entities, WSC spans not at their stated word index)."""

    task: SuperGLUETask
    split: str
    source: str
    examples: list[Example] = field(default_factory=list)
    records: int = 0
    malformed: int = 0
    problems: list[str] = field(default_factory=list)
    answers: dict[Any, tuple[str, ...]] = field(default_factory=dict)
    warnings: Counter = field(default_factory=Counter)

    @property
    def labelled(self) -> bool:
        return bool(self.examples) and all(e.label is not None for e in self.examples)

    @property
    def counts(self) -> dict[str, int]:
        return {"records": self.records, "examples": len(self.examples), "malformed": self.malformed,
                **dict(sorted(self.warnings.items()))}

    def describe(self) -> str:
        """One line for logs: sizes, then every count that needs the reader's attention."""
        text = f"{self.source}: {self.records} records -> {len(self.examples)} examples"
        if self.malformed:
            text += f"; {self.malformed} malformed records left out (first: {self.problems[0]})"
        return text + "".join(f"; {n} {what.replace('_', ' ')}" for what, n in sorted(self.warnings.items()))


class _Malformed(Exception):
    def __init__(self, field_path: str, reason: str):
        super().__init__(field_path, reason)
        self.field, self.reason = field_path, reason


_TYPES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def _get(obj: Mapping, key: str, where: str = "", kind: type | tuple | None = None, optional: bool = False):
    """``obj[key]`` checked for presence and type; a failure names the field's full path."""
    path = f"{where}{key}"
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if value is None:
        if optional:
            return None
        raise _Malformed(path, "missing required field")
    kinds = kind if isinstance(kind, tuple) else (kind,) if kind else ()
    if kinds and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
        raise _Malformed(path, f"must be {' or '.join(_TYPES[k] for k in kinds)}, got {value!r:.40}")
    return value


def _label(task: SuperGLUETask, value: Any, path: str = "label") -> int | None:
    """Official label value (bool, label string or 0/1) or a ``datasets`` class index -> int;
    ``None``/-1 (unlabelled test rows) -> None."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == -1):
        return None
    names = [n.lower() for n in task.label_names]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return value
    if str(value).lower() in names:
        return names.index(str(value).lower())
    raise _Malformed(path, f"unknown label {value!r}; expected one of {', '.join(task.label_names)}")


def _idx(value: Any) -> int | str:
    return int(value) if isinstance(value, str) and value.isdigit() else value


# --- official jsonl records -> flat rows (the Hugging Face super_glue layout) -----------------------

def _flatten(task: SuperGLUETask, record: Any, labelled: bool) -> list[dict]:
    if not isinstance(record, dict):
        raise _Malformed("(record)", "each line must be a JSON object")
    if task.name == "multirc":
        return _flatten_multirc(record, labelled)
    if task.name == "record":
        return _flatten_record(record, labelled)
    source = record
    if task.name == "wsc":
        source = {**record, **_get(record, "target", kind=dict)}
    where = "target." if task.name == "wsc" else ""
    row = {name: _get(source, name, where if name.startswith("span") else "",
                      int if name.startswith(("start", "end")) or name.endswith("_index") else str)
           for name in task.fields}
    row["idx"] = _get(record, "idx", kind=(int, str))
    row["label"] = _get(record, "label", optional=not labelled)
    return [row]


def _flatten_multirc(record: dict, labelled: bool) -> list[dict]:
    passage = _get(record, "passage", kind=dict)
    paragraph, p = _get(passage, "text", "passage.", str), _get(record, "idx", kind=int)
    rows = []
    for i, question in enumerate(_get(passage, "questions", "passage.", list)):
        where = f"passage.questions[{i}]."
        text, q = _get(question, "question", where, str), _get(question, "idx", where, int)
        for j, answer in enumerate(_get(question, "answers", where, list)):
            at = f"{where}answers[{j}]."
            rows.append({"paragraph": paragraph, "question": text, "answer": _get(answer, "text", at, str),
                         "idx": {"paragraph": p, "question": q, "answer": _get(answer, "idx", at, int)},
                         "label": _label(TASKS["multirc"], _get(answer, "label", at, optional=not labelled),
                                         f"{at}label")})
    return rows


def _flatten_record(record: dict, labelled: bool) -> list[dict]:
    passage = _get(record, "passage", kind=dict)
    text, p = _get(passage, "text", "passage.", str), _get(record, "idx", kind=int)
    entities = set()
    for i, entity in enumerate(_get(passage, "entities", "passage.", list)):
        where = f"passage.entities[{i}]."
        start, end = _get(entity, "start", where, int), _get(entity, "end", where, int)
        if not 0 <= start <= end < len(text):  # official ReCoRD offsets are inclusive
            raise _Malformed(f"{where}end", f"span [{start}, {end}] is outside the passage ({len(text)} chars)")
        entities.add(text[start:end + 1])
    rows = []
    for i, qa in enumerate(_get(record, "qas", kind=list)):
        where = f"qas[{i}]."
        answers = _gold_answers(_get(qa, "answers", where, list, optional=not labelled), labelled, where)
        rows.append({"passage": text, "query": _get(qa, "query", where, str), "entities": sorted(entities),
                     "answers": None if answers is None else
                     sorted({_get(a, "text", f"{where}answers[{j}].", str) for j, a in enumerate(answers)}),
                     "idx": {"passage": p, "query": _get(qa, "idx", where, int)}})
    return rows


def _gold_answers(answers: list | None, labelled: bool, where: str = "") -> list | None:
    """ReCoRD answers: required and non-empty outside test files; None when the query is unlabelled."""
    if labelled and not answers:
        raise _Malformed(f"{where}answers", "no gold answer (every query of a labelled split needs one)")
    return answers or None


# --- flat rows -> examples, framed as in the official input pipeline -------------------------------

def _norm_words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())


def _find_span(words: list[str], index: int, text: str, where: str, out: SuperGLUESplit) -> tuple[int, int]:
    """Word span of ``text`` at ``index`` (WSC indexes whitespace-separated words). A few official
    records give an index that does not point at the span: the nearest occurrence is used then, and
    counted; possessives (``Emma`` at ``Emma's``) count as a match."""
    size, wanted = len(text.split()), _norm_words(text)

    def matches(i: int) -> bool:
        return _norm_words(" ".join(words[i:i + size])) in (wanted, wanted + "s")

    if 0 <= index <= len(words) - size and matches(index):
        return index, size
    found = sorted((abs(i - index), i) for i in range(len(words) - size + 1) if matches(i))
    if found:
        out.warnings["wsc_spans_moved_to_nearest_match"] += 1
        return found[0][1], size
    if 0 <= index <= len(words) - size:
        out.warnings["wsc_spans_not_matching_text"] += 1
        return index, size
    raise _Malformed(where, f"word index {index} is outside the text ({len(words)} words)")


def _mark_wsc(row: dict, out: SuperGLUESplit) -> str:
    words = row["text"].split()
    (s1, n1), (s2, n2) = (_find_span(words, row[f"span{k}_index"], row[f"span{k}_text"],
                                     f"target.span{k}_index", out) for k in (1, 2))
    for start, size, (left, right) in ((s1, n1, "[]"), (s2, n2, "**")):
        words[start] = left + words[start]
        words[start + size - 1] += right
    return " ".join(words)


def _mark_word(row: dict, k: str) -> str:
    sentence, start, end = row[f"sentence{k}"], row[f"start{k}"], row[f"end{k}"]
    if not 0 <= start < end <= len(sentence):
        raise _Malformed(f"start{k}", f"word span [{start}, {end}) is outside sentence{k} ({len(sentence)} chars)")
    return f"{sentence[:start]}*{sentence[start:end]}*{sentence[end:]}"


def _clean_multirc(text: str) -> str:
    """As officially: MultiRC's HTML line breaks and bold tags become spaces."""
    return re.sub(r"<br>|</?b>", " ", text)


def _frame(task: SuperGLUETask, row: dict, out: SuperGLUESplit) -> list[Example]:
    name, label, ids = task.name, (None if task.name == "record" else _label(task, row.get("label"))), row["idx"]
    if name == "multirc":
        p, q, a = ids["paragraph"], ids["question"], ids["answer"]
        return [Example(_clean_multirc(row["question"]),
                        _clean_multirc(row["answer"]) + SEGMENT_SEP + _clean_multirc(row["paragraph"]),
                        label, f"{p}_{q}_{a}", f"{p}_{q}")]
    if name == "record":
        query, answers = ids["query"], row["answers"]
        if answers is not None:
            out.answers[query] = tuple(answers)
            out.warnings["record_answers_not_in_entities"] += len(set(answers) - set(row["entities"]))
        return [Example(entity, row["query"] + SEGMENT_SEP + row["passage"],
                        None if answers is None else int(entity in answers), f"{query}_{k}", query)
                for k, entity in enumerate(row["entities"])]
    idx = _idx(ids)  # one record, one id (MultiRC and ReCoRD ids above are objects)
    if name == "boolq":
        return [Example(row["question"], row["passage"], label, idx)]
    if name in ("cb", "rte", "axg"):
        return [Example(row["hypothesis"], row["premise"], label, idx)]
    if name == "axb":  # evaluated with the RTE model: same (hypothesis, premise) order as RTE
        return [Example(row["sentence2"], row["sentence1"], label, idx)]
    if name == "wic":
        return [Example(row["word"], _mark_word(row, "1") + SEGMENT_SEP + _mark_word(row, "2"), label, idx)]
    if name == "wsc":
        return [Example(row["span1_text"], row["span2_text"] + SEGMENT_SEP + _mark_wsc(row, out), label, idx)]
    return [Example(row["premise"], row["question"] + SEGMENT_SEP + row[f"choice{k + 1}"],  # COPA
                    None if label is None else int(label == k), f"{idx}_{k}", idx) for k in (0, 1)]


def _number_pairs(examples: list[Example]) -> list[Example]:
    """AX-g minimal pairs share a hypothesis (the premises differ in the pronoun's gender): the group of
    an example is the pair's number, in order of first appearance."""
    pairs: dict[str, int] = {}
    return [replace(e, group=pairs.setdefault(e.text_a, len(pairs))) for e in examples]


def _collect(task: SuperGLUETask, split: str, source: str, rows: Iterable[tuple[str, Callable[[], list[dict]]]],
             strict: bool) -> SuperGLUESplit:
    """Frame every record; ``rows`` yields (location, thunk returning the record's flat rows)."""
    out = SuperGLUESplit(task, split, source)
    for location, flat in rows:
        out.records += 1
        try:
            examples = [e for row in flat() for e in _frame(task, row, out)]
        except _Malformed as err:
            message = f"{location}:{err.field}: {err.reason}"
            if strict:
                raise ValueError(f"{message} (SuperGLUE {task.dirname} needs fields {', '.join(task.fields)}, "
                                 "idx and, except in test files, label; fix the record or read with strict=False "
                                 "to count and leave out malformed records)") from None
            out.malformed += 1
            out.problems.append(message)
            continue
        out.examples.extend(examples)
    if task.name == "axg":
        out.examples = _number_pairs(out.examples)
    return out


def read_jsonl(path: str | Path, task: str | SuperGLUETask, split: str = "val", strict: bool = False) -> SuperGLUESplit:
    """Read one official-format jsonl file of ``task``. ``split`` says whether labels are required
    (all splits but ``test``)."""
    task = task if isinstance(task, SuperGLUETask) else get_superglue_task(task)
    split, path = _SPLIT_ALIASES.get(split, split), Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SuperGLUE {task.dirname} {split} file not found: {path}")

    def lines():
        with open(path, "rb") as stream:
            for number, data in enumerate(stream, 1):
                if data.strip():
                    yield f"{path}:{number}", lambda data=data: _flatten(task, _parse_line(data), split != "test")

    return _collect(task, split, str(path), lines(), strict)


def _parse_line(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise _Malformed("(record)", f"not valid UTF-8 ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise _Malformed("(record)", f"not valid JSON ({err.msg})") from None


def load_split(data_dir: str | Path, task: str | SuperGLUETask, split: str, strict: bool = False) -> SuperGLUESplit:
    """``split`` of ``task`` from the official layout under ``data_dir`` (``DIR/CB/val.jsonl``,
    ``DIR/AX-b/AX-b.jsonl`` whose only split is ``test``)."""
    task = task if isinstance(task, SuperGLUETask) else get_superglue_task(task)
    path = task.path(data_dir, split)
    if not path.is_file():
        present = available_splits(data_dir, task)
        raise FileNotFoundError(f"SuperGLUE {task.dirname} {task.split_name(split)} split not found: {path} "
                                f"(splits present: {', '.join(present) or 'none'}; expected the official layout "
                                f"DIR/{task.dirname}/{{{','.join(task.files.values())}}})")
    return read_jsonl(path, task, task.split_name(split), strict)


def available_splits(data_dir: str | Path, task: str | SuperGLUETask) -> list[str]:
    task = task if isinstance(task, SuperGLUETask) else get_superglue_task(task)
    return [split for split in task.files if task.path(data_dir, split).is_file()]


def read_superglue_dataset(dataset: Any, task: str | SuperGLUETask, split: str = "val",
                    strict: bool = False) -> SuperGLUESplit:
    """A Hugging Face ``super_glue`` split (``load_dataset("super_glue", "cb")["validation"]``, or any
    ``datasets.Dataset`` with the same columns; label -1 = unlabelled). ``wsc.fixed`` rows read as
    ``wsc``."""
    task = task if isinstance(task, SuperGLUETask) else get_superglue_task(task)
    split = _SPLIT_ALIASES.get(split, split)
    columns = set(getattr(dataset, "column_names", None) or [])
    needed = set(task.fields) | {"idx"} | (set() if task.name == "record" else {"label"})
    if task.name == "record":
        needed = needed - {"answers"}
    missing = sorted(needed - columns)
    if missing:
        raise ValueError(f"not a super_glue {task.name} dataset: missing column(s) {', '.join(missing)} "
                         f"(has: {', '.join(sorted(columns)) or 'none'})")

    def rows():
        for number, row in enumerate(dataset):
            yield f"datasets row {number}", lambda row=row: [_hf_row(task, row, split != "test")]

    return _collect(task, split, f"datasets:{task.name}/{split}", rows(), strict)


def _hf_row(task: SuperGLUETask, row: Mapping, labelled: bool) -> dict:
    for name in task.fields:
        if name != "answers":
            _get(row, name)
    if isinstance(row.get("idx"), Mapping):
        keys = ("paragraph", "question", "answer") if task.name == "multirc" else ("passage", "query")
        for key in keys:
            _get(row["idx"], key, "idx.", int)
    else:
        _get(row, "idx")
    if task.name == "record":
        return {**row, "entities": sorted(set(row["entities"])),
                "answers": _gold_answers(list(row.get("answers") or []), labelled)}
    if labelled and _label(task, row.get("label")) is None:
        raise _Malformed("label", "missing label (-1) outside the test split")
    return dict(row)
