"""GLUE metrics, as the official FNet code reports them, computed with scikit-learn and scipy.

``score`` is the single number per task that the FNet paper's Table 2 shows (CoLA: Matthews
correlation, MRPC/QQP: F1 of the positive class, STS-B: Spearman, accuracy otherwise), as a
percentage; :func:`glue_average` follows the paper's averaging convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

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
