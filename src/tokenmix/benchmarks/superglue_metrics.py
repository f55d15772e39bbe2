"""SuperGLUE metrics as the leaderboard computes them, and leaderboard submission files.

Scores are percentages (0-100, as the leaderboard and :mod:`tokenmix.benchmarks.glue_metrics` show them).
``predictions`` are per :class:`~tokenmix.benchmarks.examples.Example`, in
the order of the examples: the predicted class index for classification tasks and MultiRC, the
candidate's scalar score for COPA and ReCoRD (the best-scoring candidate of each group is the
answer, as in the official Sparse Mixers code).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from tokenmix.benchmarks.examples import Example
from tokenmix.benchmarks.superglue import BENCHMARK_TASKS, SuperGLUETask, get_superglue_task
from tokenmix.io.files import atomic_write


def _check_lengths(**columns: Sequence) -> None:
    sizes = {name: len(values) for name, values in columns.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"metric inputs differ in length: {sizes}; pass one prediction per example")
    if not next(iter(sizes.values())):
        raise ValueError("no examples to score")


def accuracy(labels: Sequence[int], predictions: Sequence[int]) -> float:
    _check_lengths(labels=labels, predictions=predictions)
    return 100.0 * float(accuracy_score(labels, predictions))


def cb_scores(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """CB: accuracy and the F1 averaged over the three classes (macro-F1)."""
    _check_lengths(labels=labels, predictions=predictions)
    return {"accuracy": accuracy(labels, predictions),
            "f1": 100.0 * float(f1_score(labels, predictions, labels=[0, 1, 2], average="macro", zero_division=0))}


def matthews(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """AX-b: Matthews correlation coefficient."""
    _check_lengths(labels=labels, predictions=predictions)
    return 100.0 * float(matthews_corrcoef(labels, predictions))


def gender_parity(groups: Sequence[Any], predictions: Sequence[int]) -> float:
    """AX-g: fraction of minimal pairs (two examples sharing a hypothesis; the premises differ in the
    pronoun's gender) whose two predictions are equal, as the official ``GenderParity`` metric."""
    _check_lengths(groups=groups, predictions=predictions)
    pairs: dict[Any, list[int]] = {}
    for group, prediction in zip(groups, predictions):
        pairs.setdefault(group, []).append(int(prediction))
    odd = [group for group, members in pairs.items() if len(members) != 2]
    if odd:
        raise ValueError(f"gender parity needs minimal pairs, but group(s) {odd[:5]} have "
                         f"{len(pairs[odd[0]])} example(s); score the whole AX-g file")
    return 100.0 * sum(a == b for a, b in pairs.values()) / len(pairs)


def multirc_scores(groups: Sequence[Any], labels: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """MultiRC: binary F1 over all answer options (F1a) and exact match per question (every answer
    of the question right), ``groups`` being the question of each answer."""
    _check_lengths(groups=groups, labels=labels, predictions=predictions)
    right: dict[Any, bool] = {}
    for group, label, prediction in zip(groups, labels, predictions):
        right[group] = right.get(group, True) and int(label) == int(prediction)
    return {"f1a": 100.0 * float(f1_score(labels, predictions, zero_division=0)),
            "em": 100.0 * sum(right.values()) / len(right)}


def best_candidates(groups: Sequence[Any], scores: Sequence[float]) -> dict[Any, int]:
    """Per group (in order of first appearance), the position of its highest-scoring example; ties go
    to the first candidate."""
    _check_lengths(groups=groups, scores=scores)
    best: dict[Any, int] = {}
    for i, (group, score) in enumerate(zip(groups, scores)):
        if group not in best or float(score) > float(scores[best[group]]):
            best[group] = i
    return best


def copa_accuracy(groups: Sequence[Any], labels: Sequence[int], scores: Sequence[float]) -> float:
    """COPA: fraction of questions whose best-scoring choice is the correct one (label 1)."""
    _check_lengths(groups=groups, labels=labels, scores=scores)
    best = best_candidates(groups, scores)
    return 100.0 * sum(int(labels[i]) == 1 for i in best.values()) / len(best)


_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official ReCoRD/SQuAD normalisation: lower case, no punctuation, no articles (a, an, the),
    single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """A fraction in [0, 1]: F1 over the multiset of normalised tokens (0 when nothing is shared)."""
    predicted, reference = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(predicted) & Counter(reference)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(reference)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def record_scores(groups: Sequence[Any], candidates: Sequence[str], scores: Sequence[float],
                  answers: Mapping[Any, Sequence[str]]) -> dict[str, float]:
    """ReCoRD: the best-scoring candidate entity of each query against its best-matching gold answer
    (max over gold answers), token F1 and exact match averaged over the queries of ``answers``; a
    query without candidates scores 0."""
    _check_lengths(groups=groups, candidates=candidates, scores=scores)
    if not answers or any(not gold for gold in answers.values()):
        raise ValueError("ReCoRD scoring needs the gold answers of every query (SuperGLUESplit.answers of a "
                         "labelled split)")
    chosen = {group: candidates[i] for group, i in best_candidates(groups, scores).items()}
    f1 = [max(token_f1(chosen.get(q, ""), g) for g in gold) for q, gold in answers.items()]
    em = [max(exact_match(chosen.get(q, ""), g) for g in gold) for q, gold in answers.items()]
    return {"f1": 100.0 * float(np.mean(f1)), "em": 100.0 * float(np.mean(em))}


def _task(task: str | SuperGLUETask) -> SuperGLUETask:
    return task if isinstance(task, SuperGLUETask) else get_superglue_task(task)


def compute_metrics(task: str | SuperGLUETask, examples: Sequence[Example], predictions: Sequence[float],
                    answers: Mapping[Any, Sequence[str]] | None = None) -> dict[str, float]:
    """Every metric of ``task`` (``task.metrics``) plus, for the tasks with two leaderboard metrics
    (CB, MultiRC, ReCoRD), ``score``: their mean, the task's leaderboard number. ``answers``: ReCoRD's
    gold answers per query (``SuperGLUESplit.answers``)."""
    task = _task(task)
    _check_lengths(examples=examples, predictions=predictions)
    labels = [int(e.label) for e in examples if e.label is not None]
    if len(labels) < len(examples):
        raise ValueError(f"{task.dirname}: cannot score unlabelled examples (a test split?); "
                         "write a submission file instead")
    groups, classes = [e.group for e in examples], [int(p) for p in predictions]
    if task.name == "copa":
        scores = {"accuracy": copa_accuracy(groups, labels, predictions)}
    elif task.name == "record":
        scores = record_scores(groups, [e.text_a for e in examples], predictions, answers or {})
    elif task.name == "multirc":
        scores = multirc_scores(groups, labels, classes)
    elif task.name == "cb":
        scores = cb_scores(labels, classes)
    elif task.name == "axb":
        scores = {"mcc": matthews(labels, classes)}
    else:
        scores = {"accuracy": accuracy(labels, classes)}
        if task.name == "axg":
            scores["gender_parity"] = gender_parity(groups, classes)
    if task.main_metric == "score":
        scores["score"] = float(np.mean([scores[name] for name in task.metrics]))
    return scores


def superglue_average(task_scores: Mapping[str, Mapping[str, float] | float]) -> float:
    """The SuperGLUE score as the leaderboard computes it: the mean over tasks of each task's score,
    where a task with two metrics (CB accuracy/F1, MultiRC F1a/EM, ReCoRD F1/EM) first counts as their
    mean. The diagnostics AX-b and AX-g are not part of it. Values are metric dicts as returned by
    :func:`compute_metrics` or a task's score directly; the mean is over the tasks given (the
    leaderboard's number needs all eight)."""
    per_task = []
    for name, value in task_scores.items():
        task = get_superglue_task(name)
        if task.evaluate_with is not None:
            continue
        if isinstance(value, Mapping):
            missing = [m for m in task.metrics if m not in value]
            if missing:
                raise ValueError(f"{task.dirname} scores lack {', '.join(missing)} (have: {', '.join(value)})")
            value = float(np.mean([value[m] for m in task.metrics]))
        per_task.append(float(value))
    if not per_task:
        raise ValueError(f"no SuperGLUE benchmark task scores to average (tasks: {', '.join(BENCHMARK_TASKS)})")
    return float(np.mean(per_task))


def submission_records(task: str | SuperGLUETask, examples: Sequence[Example],
                       predictions: Sequence[float]) -> list[dict]:
    """The leaderboard's jsonl records: ``{"idx", "label"}`` with label names restored (BoolQ/WiC
    ``"true"``/``"false"``, WSC ``"True"``/``"False"``, CB/RTE/AX label strings), COPA the chosen
    choice (0/1), ReCoRD ``{"idx": query, "label": entity text}``, MultiRC one nested record per
    paragraph: ``{"idx", "passage": {"questions": [{"idx", "answers": [{"idx", "label"}]}]}}``."""
    task = _task(task)
    _check_lengths(examples=examples, predictions=predictions)
    if task.kind == "classification":
        return [{"idx": e.idx, "label": task.label_names[int(p)]} for e, p in zip(examples, predictions)]
    if task.kind == "multiple_choice":
        groups = [e.group for e in examples]
        best = best_candidates(groups, predictions)
        if task.name == "copa":
            first = {g: groups.index(g) for g in best}
            return [{"idx": g, "label": i - first[g]} for g, i in best.items()]
        return [{"idx": g, "label": examples[i].text_a} for g, i in best.items()]
    paragraphs: dict[int, dict[int, list[dict]]] = {}
    for e, p in zip(examples, predictions):
        paragraph, question, answer = (int(part) for part in str(e.idx).split("_"))
        paragraphs.setdefault(paragraph, {}).setdefault(question, []).append({"idx": answer, "label": int(p)})
    return [{"idx": paragraph, "passage": {"questions": [{"idx": q, "answers": answers}
                                                         for q, answers in questions.items()]}}
            for paragraph, questions in paragraphs.items()]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """One JSON record per line, written atomically (a crash leaves the previous file or none, never
    half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(record) + "\n" for record in records)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_submission(out_dir: str | Path, task: str | SuperGLUETask, examples: Sequence[Example],
                     predictions: Sequence[float]) -> Path:
    """Write ``OUT_DIR/<Task>.jsonl`` (``BoolQ.jsonl``, ``AX-b.jsonl``, ...) as the leaderboard expects."""
    task = _task(task)
    return write_jsonl(Path(out_dir) / f"{task.dirname}.jsonl", submission_records(task, examples, predictions))
