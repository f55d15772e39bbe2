"""GLUE metrics, as the official FNet code reports them, computed with scikit-learn and scipy.

``score`` is the single number per task that the FNet paper's Table 2 shows (CoLA: Matthews
correlation, MRPC/QQP: F1 of the positive class, STS-B: Spearman, accuracy otherwise), as a
percentage; :func:`glue_average` follows the paper's averaging convention.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from tokenmix.benchmarks.glue import COLUMN_SPLITS, get_glue_task, read_split

METRICS = ("accuracy", "f1", "mcc", "pearson", "spearman")


def compute(names: Sequence[str], predictions: Sequence[float], labels: Sequence[float]) -> dict[str, float]:
    """Each metric in ``names`` for class predictions (or regression scores) against gold labels.
    Correlations of a constant prediction are undefined; they are reported as 0 (a failed run)."""
    preds, gold = np.asarray(predictions), np.asarray(labels)
    if preds.shape != gold.shape or preds.ndim != 1 or not len(gold):
        raise ValueError(f"need as many predictions as labels (1-D, non-empty), got {preds.shape} and {gold.shape}")
    results: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            value = accuracy_score(gold, preds)
        elif name == "f1":
            value = f1_score(gold, preds, pos_label=1, zero_division=0.0)
        elif name == "mcc":
            value = matthews_corrcoef(gold, preds)
        elif name in ("pearson", "spearman"):
            constant = np.ptp(preds) == 0 or np.ptp(gold) == 0
            value = 0.0 if constant else (pearsonr if name == "pearson" else spearmanr)(preds, gold)[0]
        else:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        results[name] = 100.0 * float(value)
    return results


def glue_average(scores: dict[str, float]) -> float:
    """Mean of the paper's per-task scores (keys are the Table 2 columns: ``mnli-m``, ``mnli-mm``,
    ``qqp``, ``qnli``, ``sst2``, ``cola``, ``stsb``, ``mrpc``, ``rte``): MNLI-m and MNLI-mm count
    as two entries and WNLI is left out, as in the paper; failed tasks (NaN) are left out too."""
    kept = [v for k, v in scores.items() if k != "wnli" and v is not None and not math.isnan(v)]
    if not kept:
        raise ValueError("no task scores to average")
    return sum(kept) / len(kept)


def constant_baseline(data_dir: str | Path, column: str) -> float:
    """The column's score on its dev split of a model that ignores its input: the majority class (its
    mean for STS-B, whose correlations are then 0), e.g. MRPC F1 81.2 and CoLA MCC 0. A fine-tuned score
    near it says the model learnt nothing from the text."""
    name, split = COLUMN_SPLITS.get(column, (column, "dev"))
    task = get_glue_task(name)
    labels = [float(e.label) for e in read_split(data_dir, task, split).examples if e.label is not None]
    guess = statistics.fmean(labels) if task.is_regression else Counter(labels).most_common(1)[0][0]
    return compute([task.score], [guess] * len(labels), labels)[task.score]


def constant_baselines(data_dir: str | Path, columns: list[str]) -> dict[str, float]:
    """:func:`constant_baseline` of each column whose dev split is in ``data_dir``: the floor a fine-tuned
    score is read against (columns without data are left out)."""
    scores = {}
    for column in columns:
        try:
            scores[column] = constant_baseline(data_dir, column)
        except FileNotFoundError:
            continue
    return scores


FLOOR_LABEL = "input ignored (majority class)"
FLOOR_NOTE = ("'input ignored': the score of always answering the majority class (the mean for STS-B) on each whole "
              "dev split.")


def floor_cells(floor: dict[str, float], columns: list[str]) -> list[str]:
    """The input-ignored row's cells for a results table: each column's :func:`constant_baseline` (``-``
    where its data is absent) and their average when every column has one."""
    shown = {c: floor[c] for c in columns if c in floor}
    return [*(f"{floor[c]:.1f}" if c in floor else "-" for c in columns),
            f"{glue_average(shown):.1f}" if shown and len(shown) == len(columns) else "-"]
