"""Settings of ``tokenmix reproduce``: a torch-free dataclass, one command-line flag per field, and
the study's scales (``scales.json``: sizes, lengths, learning rates, tasks, budget shares)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenmix.models.registry import get_variant
from tokenmix.options import check_ranges, option, require_values
from tokenmix.precisions import PRECISION_HELP, check_precision

SCALES: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "scales.json").read_text())
MODELS = ("bert", "fnet", "linear", "random", "ff_only", "hybrid", "sparse_mixer", "fast_sparse_mixer")


def parse_budget(text: str) -> float:
    """``2h``, ``90m``, ``45s``, ``1h30m`` or plain seconds."""
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or parts is None or not any(parts.groups()):
        raise ValueError(f"--budget {text!r} is not a duration; write e.g. 2h, 90m, 1h30m or 600s")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass
class ReproduceConfig:
    scale: str = option("mini", "tiny (minutes; the tests), mini (~2 hours on 2 CPU cores), budget (mini models "
                                "with the budget recipe and a fixed pretraining time each, full GLUE training sets, "
                                "3 fine-tuning seeds: many hours, in chunks with --max-time) or base (the papers' "
                                "sizes, GPU)")
    budget: str = option("2h", "total wall-clock budget, e.g. 2h, 90m, 600s (pretraining and GLUE get fixed shares)")
    data: str = option("../shared/data", "data folder holding text/wikipedia_en/wiki_chunk.txt.gz and glue/")
    out: str = option("results/mini", "results folder (rerunning resumes; another configuration is refused)",
                      output="run")
    models: tuple[str, ...] = option(MODELS, "models compared (all at the scale's size, same settings)")
    overwrite: bool = option(False, "delete a results folder of another configuration and start over")
    device: str = option("auto", "auto, cpu, cuda")
    precision: str = option("auto", PRECISION_HELP)
    seed: int = option(0, "seed of every stage (fine-tuning: the first of the scale's seeds)")
    max_time: float | None = option(None, "end this invocation after N seconds: the training stage in progress "
                                          "checkpoints, the report shows what is finished, and the same command "
                                          "continues the study")

    def __post_init__(self) -> None:
        check_ranges(self)
        check_precision(self.precision)
        if self.scale not in SCALES:
            raise ValueError(f"unknown --scale {self.scale!r}; choose one of {', '.join(SCALES)}")
        require_values(self, "models")  # none would run the data stages, then fail
        for name in self.models:
            get_variant(name)
        need = SCALES[self.scale]["min_budget_s"]
        if self.seconds < need:
            fits = [f"{s} (from {SCALES[s]['min_budget_s'] / 60:g} min)" for s in SCALES if SCALES[s]["min_budget_s"] <= self.seconds]
            raise ValueError(f"--budget {self.budget} is too small for --scale {self.scale}, which needs at least "
                             f"{need / 60:g} minutes; " + (f"what fits: --scale {', '.join(fits)}" if fits else
                                                           f"give at least {SCALES['tiny']['min_budget_s'] / 60:g} minutes"))

    @property
    def seconds(self) -> float:
        return parse_budget(self.budget)
