"""Published figures of the FNet paper, kept as data so reports can print them beside ours
(Lee-Thorp et al., NAACL 2022; ``../shared/reference/paper-figures.md`` holds the full tables)."""

from __future__ import annotations

# Table 2, GLUE dev: CoLA MCC, MRPC/QQP F1, STS-B Spearman, accuracy otherwise; None = the run failed.
GLUE_COLUMNS = ("mnli-m", "mnli-mm", "qqp", "qnli", "sst2", "cola", "stsb", "mrpc", "rte")
GLUE: dict[str, tuple[float | None, ...]] = {
    "bert-base": (84, 81, 87, 91, 93, 73, 89, 83, 69),
    "linear-base": (74, 75, 84, 80, 94, 67, 67, 83, 69),
    "fnet-base": (72, 73, 83, 80, 95, 69, 79, 76, 63),
    "random-base": (51, 50, 70, 61, 76, 67, 4, 73, 57),
    "ff_only-base": (34, 35, 31, 52, 48, 67, None, 73, 54),
    "hybrid-base": (78, 79, 85, 88, 94, 76, 86, 79, 60),
    "bert-large": (88, 88, 88, 92, 95, 71, 88, 86, 66),
    "linear-large": (35, 36, 84, 80, 79, 67, 24, 73, 60),
    "fnet-large": (78, 76, 85, 85, 94, 78, 84, 88, 69),
}
GLUE_AVERAGE = {"bert-base": 83.3, "linear-base": 77.0, "fnet-base": 76.7, "random-base": 56.6, "ff_only-base": 49.3,
                "hybrid-base": 80.6, "bert-large": 84.7, "linear-large": 59.8, "fnet-large": 81.9}

# Table 1, pretraining (C4, MLM + NSP), Base models: total loss, MLM loss, NSP loss, MLM acc, NSP acc.
PRETRAINING: dict[str, tuple[float, ...]] = {
    "bert-base": (1.76, 1.48, 0.28, 0.68, 0.86),
    "linear-base": (2.12, 1.78, 0.35, 0.62, 0.83),
    "fnet-base": (2.45, 2.06, 0.40, 0.58, 0.80),
    "random-base": (5.02, 4.48, 0.55, 0.26, 0.70),
    "ff_only-base": (7.54, 6.85, 0.69, 0.13, 0.50),
    "hybrid-base": (2.13, 1.79, 0.34, 0.63, 0.84),
}
# Table 3, pretraining speed-up over BERT-Base as published (GPU batch 64, TPU batch 256).
SPEEDUP: dict[str, tuple[float, float]] = {
    "bert-base": (1.0, 1.0), "linear-base": (5.7, 1.8), "fnet-base": (6.9, 2.0), "random-base": (6.1, 2.0),
    "ff_only-base": (7.8, 2.0), "hybrid-base": (5.7, 1.8),
}
# Sparse Mixers paper (Base): speed-ups over BERT-Base and accuracy relative to it (headline claims).
SPARSE_MIXER = {"sparse_mixer": {"train_speedup": 1.65, "inference_speedup": 1.61,
                                 "accuracy": "slightly (<1%) above BERT on GLUE and SuperGLUE"},
                "fast_sparse_mixer": {"train_speedup": 1.89, "inference_speedup": 1.98,
                                      "accuracy": "within 0.2% of BERT on SuperGLUE"}}
