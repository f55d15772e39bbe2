"""Settings of the ``tokenmix lra`` commands (``run``, ``eval``, ``table``, ``speed``).

Torch-free on purpose: the command line reads these dataclasses to build its flags (one flag per field,
its help text from :func:`~tokenmix.options.option`), so ``tokenmix --help`` never imports torch. The
validation in ``__post_init__`` uses torch-free modules only (the task table, the model registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenmix.lra.tasks import DIFFICULTY, OVERFLOW, SPLITS, get_lra_task
from tokenmix.models.config import POOLINGS, parse_overrides
from tokenmix.models.registry import get_variant
from tokenmix.options import OVERWRITE_HELP, check_ranges, option
from tokenmix.precisions import PRECISION_HELP, check_precision
from tokenmix.train.configs import FitConfig

PERFORMER = "performer"  # the efficient-attention peer of `lra speed` (performer-pytorch), not a registered variant


def check_choices(*choices: tuple[str, str, tuple[str, ...]]) -> None:
    """Raise a one-line ValueError for the first (flag, value, allowed) whose value is not allowed."""
    for flag_name, value, allowed in choices:
        if value not in allowed:
            raise ValueError(f"--{flag_name} {value!r} is not valid; choose one of {', '.join(allowed)}")


@dataclass
class DataFlags:
    """Data options shared by ``lra run`` and ``lra eval``."""

    data_dir: str = option("", "folder in the task's official format; listops/pathfinder without it: generated data")
    cache_dir: str = option("runs/lra-data", "where generated data and encoded splits are cached")
    on_overflow: str = option("truncate", "a sequence longer than the task allows: truncate (counted) or error")
    difficulty: str = option("hard", "pathfinder: easy, intermediate or hard (contour length 6/9/14; LRA: hard)")
    train_size: int = option(0, "generated tasks: training examples (0 = published size: ListOps 96k, Pathfinder 160k)")
    eval_size: int = option(0, "generated tasks: validation and test examples each (0 = published: 2k / 20k); "
                               "data read from --data-dir: a seeded sample of this many test examples (0 = all)")
    val_size: int = option(2000, "examples held out of train for validation when the data has no validation file")
    max_len: int = option(0, "keep the first N tokens of every sequence (0 = the task's full length; eval: the "
                             "model's); shorter trains faster, and the examples cut are counted")
    workers: int = option(0, "processes generating Pathfinder images (0 = one per CPU core; same images for any number)")

    def check_data_flags(self) -> None:
        """Refuse a bad choice before any data is generated or read (that can take minutes)."""
        check_choices(("on-overflow", self.on_overflow, OVERFLOW), ("difficulty", self.difficulty, tuple(DIFFICULTY)))


@dataclass
class LRARunConfig(FitConfig, DataFlags):
    task: str = option("", "listops, text, retrieval, image, pathfinder32/64/128 (pathfinder = 32, path-x = 128)",
                       positional=True)
    model: str = option("fnet", "registered model name (see `tokenmix models`)")
    preset: str = option("lra", "lra = the task's official LRA base config; or a size preset (tiny, mini, ...)")
    pooling: str = option("", "cls or mean (default: the task's official pooling)")
    override: tuple[str, ...] = option((), "model config overrides, e.g. num_layers=2,dropout=0.0")
    out: str = option("", "run directory (default: runs/lra/TASK-MODEL)", output="run")
    lr: tuple[float, ...] = option((0.0,), "peak AdamW learning rate(s) (0 = the task default); several = a sweep")
    batch_size: int = option(0, "examples per step (0 = the task's official batch size)")
    epochs: float = option(0.0, "passes over the training data (0 = the task default)")
    weight_decay: float = option(-1.0, "AdamW weight decay (-1 = the task's official value)")
    eval_batch_size: int = option(64, "examples per evaluation batch")

    def __post_init__(self) -> None:
        if not self.task:
            raise ValueError("missing TASK: one of listops, text, retrieval, image, pathfinder32, pathfinder64, pathfinder128")
        spec = get_lra_task(self.task)
        self.task = spec.name
        defaults = spec.train
        if self.lr == (0.0,):
            self.lr = (defaults["learning_rate"],)
        self.batch_size = self.batch_size or defaults["batch_size"]
        if self.weight_decay == -1.0:
            self.weight_decay = defaults["weight_decay"]
        if not self.max_steps and not self.epochs:
            self.max_steps, self.epochs = defaults.get("max_steps", 0), defaults.get("epochs", 0.0)
        self.pooling = self.pooling or spec.pooling
        check_choices(("pooling", self.pooling, POOLINGS))
        self.check_data_flags()
        self.out = self.out or f"runs/lra/{spec.name}-{self.model}"
        get_variant(self.model)
        super().__post_init__()  # checks the ranges, of the task's defaults too


@dataclass
class LRAEvalConfig(DataFlags):
    task: str = option("", "the task of the data (listops, text, retrieval, image, pathfinder32/64/128)",
                       positional=True)
    checkpoint: str = option("", "run directory of `tokenmix lra run` (its best/ model) or a model folder")
    split: str = option("test", "train, val, test, or all (the three together: a folder made only to be scored)")
    batch_size: int = option(64, "examples per batch")
    seed: int = option(0, "seed of generated data and of held-out validation rows")
    device: str = option("auto", "auto, cpu, cuda")
    precision: str = option("auto", PRECISION_HELP)
    json: str | None = option(None, "also write the result to this JSON file", output="file")
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        if not self.task or not self.checkpoint:
            raise ValueError("lra eval needs a TASK and --checkpoint RUN_DIR")
        check_ranges(self)
        check_precision(self.precision)
        self.check_data_flags()
        self.task = get_lra_task(self.task).name
        if self.split not in (*SPLITS, "all"):
            raise ValueError(f"--split {self.split!r} is not valid; choose one of {', '.join(SPLITS)} or all")


@dataclass
class LRATableConfig:
    runs: tuple[str, ...] = option(("runs/lra",), "run directories (searched recursively for summary.json)")
    json: str | None = option(None, "also write the table as JSON", output="file")
    markdown: str | None = option(None, "also write the markdown table to this file", output="file")
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        self.runs = tuple(self.runs)
        if not self.runs:
            raise ValueError("--runs is empty; name at least one run directory")


@dataclass
class LRASpeedConfig:
    models: tuple[str, ...] = option(("bert", "linear", "fnet", "performer"),
                                     "models; `name:field=value` overrides a config field "
                                     "(e.g. bert:attention_dropout=0.0); performer needs performer-pytorch")
    seq_lens: tuple[int, ...] = option((512, 1024, 2048, 4096, 8192), "sequence lengths")
    batch_size: int = option(8, "examples per step")
    task: str = option("text", "LRA task whose official configuration is measured")
    warmup: int = option(1, "untimed steps per configuration")
    repeats: int = option(3, "timed steps (the median is reported)")
    time_budget: float = option(600.0, "seconds per configuration (model build + all steps); longer = 'over budget'")
    max_memory_gb: float = option(8.0, "address-space limit per configuration; more = 'OOM'")
    baseline: str = option("bert", "model of the speed-up ratios")
    device: str = option("auto", "auto, cpu, cuda")
    precision: str = option("auto", PRECISION_HELP + " (auto: as `lra run` trains)")
    seed: int = option(0, "seed of weights and inputs")
    out: str = option("runs/lra-speed", "output folder: speed.json, speed.md, speed.png", output="folder")
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        self.models, self.seq_lens = tuple(self.models), tuple(self.seq_lens)
        check_ranges(self)
        for spec in self.models:
            parse_model_spec(spec)
        if not self.models or not self.seq_lens:
            raise ValueError("--models and --seq-lens must not be empty")
        check_precision(self.precision)
        get_lra_task(self.task)


def parse_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"bert:attention_dropout=0.0"`` -> ("bert", {"attention_dropout": 0.0})."""
    name, *overrides = spec.split(":")
    if name != PERFORMER:
        get_variant(name)
    return name, parse_overrides(overrides)
