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
