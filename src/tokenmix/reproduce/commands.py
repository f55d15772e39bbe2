"""``tokenmix reproduce`` (the table is collected by ``tokenmix.cli``)."""

from __future__ import annotations

from typing import Any


def run_reproduce(config: Any) -> None:
    from tokenmix.reproduce.study import run_reproduce

    print(f"wrote {run_reproduce(config)}")


COMMANDS = (
    (("reproduce",), "run the FNet paper's comparisons end to end at a scale and budget; writes REPORT.md",
     "Tokenizer, pretraining data, pretraining of every model (equal share of the budget), GLUE fine-tuning, "
     "speed benchmark and REPORT.md with the papers' figures beside ours. Rerunning skips finished stages.",
     "reproduce.study:ReproduceConfig", run_reproduce),
)
