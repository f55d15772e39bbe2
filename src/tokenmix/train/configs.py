"""Settings of the training commands (``pretrain``, ``finetune``, ``glue``, ``superglue``, ``distill``,
``demo``) and of the data they draw pretraining batches from.

Torch-free on purpose: the command line reads these dataclasses to build its flags (one flag per field,
its help text from :func:`~tokenmix.options.option`), so ``tokenmix --help`` never imports torch. The
validation in ``__post_init__`` uses torch-free modules only (the model registry, the task adapters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from tokenmix.benchmarks.tasks import get_benchmark_task
from tokenmix.models.registry import get_variant
from tokenmix.options import AT_LEAST_ONE, OVERWRITE_HELP, check_ranges, option, require_values
from tokenmix.precisions import PRECISION_HELP, check_precision
from tokenmix.text.configs import parse_length_buckets

NSP_TASKS = ("swap", "random", "none")
SCHEDULES = ("linear", "budget")
# What ``--recipe`` sets. "paper" is the official FNet recipe (the defaults); "budget" the short-budget
# one, each choice measured (README "Budget recipe"). A recipe sets the fields still at their default, so
# a flag given with another value wins; its overrides come before --override's, which therefore win too.
RECIPES: dict[str, dict[str, object]] = {
    "paper": {},
    "budget": {"nsp": "none", "schedule": "budget", "learning_rate": 1e-3, "warmup_steps": 300, "batch_size": 64,
               "override": ("dropout=0.0", "attention_dropout=0.0")},
}


@dataclass
class PretrainingDataConfig:
    """How MLM + NSP examples are built from the prepared shards (:mod:`tokenmix.text.pretraining`)."""

    max_seq_len: int = option(128, "tokens per example, [CLS] and two [SEP] included; every example is padded to it")
    max_predictions_per_seq: int = option(20, "masked-LM prediction slots per example (unused slots have weight 0; "
                                              "official: 80 at length 512)")
    mlm_probability: float = option(0.15, "fraction of the non-special tokens of an example that are predicted")
    nsp: str = option("swap", "sentence-pair task: swap (official FNet: label 1 = segments swapped), random (BERT: "
                              "label 1 = second segment from another document) or none (MLM only)")
    seed: int = option(0, "seed of the data (example j of step s depends only on (seed, split, s, j)); pretraining "
                          "also seeds the weights and dropout with it")

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.max_seq_len < 5:
            raise ValueError(f"--max-seq-len must be at least 5 ([CLS] a [SEP] b [SEP]), got {self.max_seq_len}")
        if self.max_predictions_per_seq > self.max_seq_len - 3:
            raise ValueError(f"--max-predictions-per-seq must be at most --max-seq-len - 3 = {self.max_seq_len - 3}, "
                             f"got {self.max_predictions_per_seq}")
        if self.nsp not in NSP_TASKS:
            raise ValueError(f"--nsp must be one of {', '.join(NSP_TASKS)}, got {self.nsp!r}")


@dataclass
class PretrainConfig(PretrainingDataConfig):
    """``tokenmix pretrain``: the data fields above, then the model and the run."""

    recipe: str = option("paper", "paper (the official settings: the defaults) or budget (MLM only, no dropout, lr 1e-3 "
                                  "decaying to 0 at --max-time, batch 64; fields given explicitly win)")
    model: str = option("fnet", "registered model name (see `tokenmix models`)")
    preset: str = option("mini", "size preset")
    data: str = option("", "directory written by `tokenmix data prepare`")
    out: str = option("", "run directory (checkpoints, metrics.jsonl, summary.json); a folder holding other files is "
                          "refused unless --overwrite", output="run")
    override: tuple[str, ...] = option((), "model config overrides, e.g. dropout=0.0,fourier_impl=matmul")
    batch_size: int = option(32, "examples per process per micro-step")
    grad_accum: int = option(1, "micro-steps accumulated per optimizer step")
    learning_rate: float = option(1e-4, "peak AdamW learning rate (official: 1e-4)")
    warmup_steps: int = option(10000, "linear warm-up steps (official: 10000), then the --schedule decay")
    schedule: str = option("linear", "learning-rate decay after the warm-up: linear (to 0 at --max-steps, official) or "
                                     "budget (to 0 at --max-time seconds of training, as in Cramming)")
    decay_fraction: float = option(1.0, "share of the schedule spent decaying: 1 = from the end of the warm-up; 0.2 = "
                                        "hold the peak, then decay over the last fifth (warm-up-stable-decay)")
    max_steps: int = option(1_000_000, "optimizer steps (official: 1M)", range=AT_LEAST_ONE)  # no epochs to fall back on
    max_time: float | None = option(None, "stop after this many seconds of training (a checkpoint is saved)")
    weight_decay: float = option(0.01, "AdamW weight decay, on all parameters as officially")
    clip_grad_norm: float = option(1.0, "clip the global gradient norm (0 = off; the official code does not clip)")
    precision: str = option("auto", PRECISION_HELP)
    compile: bool = option(False, "torch.compile the model in place (Fourier mixing then runs as DFT matmuls)")
    eval_every: int = option(1000, "evaluate on the held-out split every N steps (0 = only at the end of the run: there "
                                   "are no epochs; the final evaluation is always made)")
    eval_batches: int = option(20, "held-out batches of 32 fixed examples per evaluation (the same examples "
                                            "whatever --batch-size and the number of processes)")
    log_every: int = option(10, "append train metrics to metrics.jsonl every N steps")
    save_every: int = option(1000, "checkpoint every N steps")
    keep_checkpoints: int = option(3, "keep the newest K checkpoints")
    resume: bool = option(False, "continue from the newest checkpoint in --out")
    overwrite: bool = option(False, "delete an existing run in --out and start over (other files there are kept)")
    fsdp: bool = option(False, "shard the model with FSDP under torchrun instead of DDP")
    teacher: str = option("", "distil from this pretrained model (a pretraining run or model folder with the MLM head, "
                              "same tokenizer): the MLM loss becomes α·KL(teacher ‖ student)·T² + (1−α)·cross-entropy "
                              "at the masked positions")
    distill_alpha: float = option(0.5, "with --teacher: weight α of the KL term")
    distill_temperature: float = option(2.0, "with --teacher: softmax temperature T")
    device: str = option("auto", "auto, cpu, cuda")

    def __post_init__(self) -> None:
        self.apply_recipe()
        get_variant(self.model)
        if not self.data:
            raise ValueError("missing --data: the directory written by `tokenmix data prepare`")
        if not self.out:
            raise ValueError("missing --out: the run directory")
        super().__post_init__()
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.schedule == "budget" and not self.max_time:
            raise ValueError("--schedule budget decays the learning rate to 0 at --max-time; give --max-time (seconds)")
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite contradict each other; pick one")
        check_precision(self.precision)


    def apply_recipe(self) -> None:
        """Set the fields of ``--recipe`` that are still at their default (see :data:`RECIPES`)."""
        if self.recipe not in RECIPES:
            raise ValueError(f"--recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        defaults = {f.name: f.default for f in fields(self)}
        for name, value in RECIPES[self.recipe].items():
            if name == "override":
                self.override = (*value, *self.override)  # type: ignore[misc]
            elif getattr(self, name) == defaults[name]:
                setattr(self, name, value)


@dataclass
class FitConfig:
    """Training settings shared by every supervised command (command configs inherit them)."""

    lr: tuple[float, ...] = option((1e-4,), "peak AdamW learning rate; several values run a sweep, one run each, and keep "
                                            "the best on the validation metric (paper recipe: 1e-5,5e-5,1e-4)")
    batch_size: int = option(32, "training examples per step")
    epochs: float = option(3.0, "passes over the training data (official GLUE recipe: 3)")
    max_steps: int = option(0, "stop after this many steps (0 = use --epochs)")
    warmup_ratio: float = option(0.1, "fraction of the steps with linear warm-up, then linear decay to 0 (official: 0.1)")
    weight_decay: float = option(0.01, "AdamW weight decay (official: 0.01)")
    clip_grad_norm: float = option(1.0, "clip the global gradient norm (0 = off)")
    eval_every: int = option(0, "evaluate every N steps (0 = at the end of every epoch)")
    max_time: float | None = option(None, "stop training after this many seconds per run (evaluated and checkpointed)")
    log_every: int = option(20, "append training loss to metrics.jsonl every N steps")
    seed: int = option(0, "seed of the head's initialisation, the data order and dropout")
    device: str = option("auto", "auto, cpu, cuda")
    precision: str = option("auto", PRECISION_HELP)
    resume: bool = option(False, "continue unfinished runs in --out and skip finished ones")
    overwrite: bool = option(False, "delete existing runs in --out and start over")

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.lr:
            raise ValueError("--lr is empty; give one or more learning rates, e.g. 1e-5,5e-5,1e-4")
        if self.max_steps == 0 and self.epochs == 0:
            raise ValueError("--epochs must be > 0 (or give --max-steps)")
        check_precision(self.precision)
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite contradict each other; pick one")

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.max_steps or max(1, math.ceil(self.epochs * steps_per_epoch))


@dataclass
class FinetuneOptions(FitConfig):
    """Settings shared by ``tokenmix finetune`` (one task) and ``tokenmix glue`` (all tasks)."""

    lr: tuple[float, ...] = option((1e-5, 5e-5, 1e-4), "peak learning rates: one run each, the best on dev kept "
                                                  "(the paper's sweep; one value = no sweep)")
    batch_size: int = option(64, "training examples per step (official GLUE recipe: 64)")
    init: str = option("", "model folder or run directory to start from (pretraining run, converted Hugging Face "
                           "FNet, ...), or 'scratch' for random initialisation")
    model: str = option("fnet", "with --init scratch: registered model name (see `tokenmix models`)")
    preset: str = option("mini", "with --init scratch: size preset")
    override: tuple[str, ...] = option((), "model config overrides, e.g. dropout=0.0")
    tokenizer: str = option("", "tokenizer folder or file (default: the one next to --init, or of its pretraining data)")
    data_dir: str = option("", "GLUE folder in the official layout (TASK/train.tsv, dev.tsv, test.tsv)")
    out: str = option("", "output directory", output="run")
    max_seq_len: int = option(128, "tokens per example; longer inputs are truncated (and counted); mixings with "
                              "length-sized parameters (Linear, Random...) are always padded to exactly this length")
    length_buckets: str = option("auto", "lengths Fourier/Hartley mixing pads an example to (the smallest that holds "
                                         "it; batches formed within one length): auto (every length to 32, then every "
                                         "2nd to 64, every 4th to 128...), exact, fixed (all at --max-seq-len, as the "
                                         "official code) or comma-separated lengths")
    eval_batch_size: int = option(128, "examples per evaluation batch")
    max_train_examples: int = option(0, "use a random subset of at most N training examples (0 = all)")
    train_from_dev: float = option(0.0, "for a task without train.tsv (e.g. QNLI here): train on this fraction of its dev "
                                        "split and evaluate on the rest (a seeded split, recorded as the protocol)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.init:
            raise ValueError("missing --init: a model folder / run directory, or 'scratch' with --model and --preset")
        if self.init != "scratch" and (self.model, self.preset) != ("fnet", "mini"):  # the defaults: not given
            raise ValueError(f"--model/--preset choose the architecture only with --init scratch; --init {self.init} "
                             f"brings its own: drop them, or use --override to change a setting")
        if not self.data_dir and not self.own_data():
            raise ValueError("missing --data-dir: a folder in the official GLUE layout (e.g. ../shared/data/glue)")
        if not self.out:
            raise ValueError("missing --out: the output directory")
        if self.max_seq_len < 4:
            raise ValueError(f"--max-seq-len must be at least 4 ([CLS] a [SEP] ...), got {self.max_seq_len}")
        parse_length_buckets(self.length_buckets, self.max_seq_len)

    def own_data(self) -> bool:
        """True when the data are the user's tables (``finetune --text-column ...``), not a benchmark folder."""
        return False


@dataclass
class FinetuneConfig(FinetuneOptions):
    task: str = option("", "task: GLUE cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli; SuperGLUE boolq, cb, copa, "
                       "multirc, record, rte, wic, wsc (with --benchmark superglue)")
    benchmark: str = option("glue", "glue (official TSV layout) or superglue (official jsonl layout)")
    train_file: str = option("", "your own data instead of --task: training table (.csv, .tsv or .jsonl, with a header)")
    validation_file: str = option("", "with --train-file: validation table (same columns), for the sweep and metrics")
    test_file: str = option("", "with --train-file: optional table to predict (scored too when it has the label column)")
    text_column: str = option("", "with --train-file: the column holding the text")
    text_pair_column: str = option("", "with --train-file: the column holding the second text of a pair (optional)")
    label_column: str = option("label", "with --train-file: the column holding the label (class name, integer or true/false; a "
                                               "number with --regression)")
    regression: bool = option(False, "with --train-file: the label is a number to predict (regression), not a class")

    def own_data(self) -> bool:
        return bool(self.train_file or self.text_column)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.own_data():
            if self.task:
                raise ValueError("give --task (a benchmark task) or --train-file (your own data), not both")
            if not self.text_column:
                raise ValueError("missing --text-column: the column of --train-file that holds the text")
            if not self.label_column:
                raise ValueError("missing --label-column: the column of --train-file that holds the label")
            return
        if not self.task:
            raise ValueError("missing --task (GLUE: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli) or "
                             "--train-file with --validation-file and --text-column (your own data)")
        get_benchmark_task(self.benchmark, self.task)


@dataclass
class GlueConfig(FinetuneOptions):
    tasks: tuple[str, ...] = option((), "tasks to run (default: every task with a train split in --data-dir, or with a "
                                        "dev split when --train-from-dev is set)")


@dataclass
class SuperGlueConfig(GlueConfig):
    epochs: float = option(5.0, "passes over the training data (Sparse Mixers recipe: 5)")


@dataclass
class DistillConfig(FinetuneOptions):
    lr: tuple[float, ...] = option((1e-4,), "peak learning rate(s) of the student; several values run a sweep")
    init: str = option("scratch", "the student's starting point: 'scratch' (with --student/--preset) or a pretrained "
                                  "model folder / run directory of the student")
    teacher: str = option("", "fine-tuned teacher model folder (written by `tokenmix finetune`)")
    student: str = option("fnet", "student variant when --init scratch (see `tokenmix models`)")
    task: str = option("", "the task the teacher was fine-tuned on")
    benchmark: str = option("glue", "glue or superglue")
    alpha: float = option(0.5, "weight of the distillation term (1 = teacher only, 0 = labels only)")
    temperature: float = option(2.0, "softmax temperature of the KL term")

    def __post_init__(self) -> None:
        if self.model not in ("fnet", self.student):  # "fnet": FinetuneOptions' default, i.e. not given
            raise ValueError(f"distill takes the student's variant from --student, not --model {self.model}; "
                             f"use --student {self.model}")
        self.model = self.student
        super().__post_init__()
        if not self.teacher:
            raise ValueError("missing --teacher: a folder written by `tokenmix finetune` for the same --task")
        if not self.task:
            raise ValueError("missing --task: the task the teacher was fine-tuned on")
        get_benchmark_task(self.benchmark, self.task)


@dataclass
class DemoConfig:
    models: tuple[str, ...] = option(("fnet", "bert"), "registered model names; the last one is the baseline of the speed ratios")
    preset: str = option("tiny", "size preset of every model")
    seq_len: int = option(1024, "padded sequence length (expressions are shorter; the rest is padding)")
    batch_size: int = option(16, "examples per training step")
    seconds: float = option(45.0, "wall-clock training budget per model, in seconds (the default demo takes ~2 minutes "
                                  "on a 2-core CPU)")
    # 0 means "the published size" in the LRA commands, nothing here
    train_size: int = option(8000, "generated training examples (reshuffled each epoch)", range=AT_LEAST_ONE)
    eval_size: int = option(400, "held-out examples scored after training (disjoint from the training set)",
                            range=AT_LEAST_ONE)
    learning_rate: float = option(5e-4, "peak AdamW learning rate, reached by a linear warm-up over the first tenth of "
                                        "the budget")
    max_depth: int = option(1, "ListOps nesting depth (1 = a flat list like [MAX 2 9 0 ])")
    max_args: int = option(5, "most arguments per ListOps operator (at least 2)")
    seed: int = option(0, "seed of the data and of each model's initialisation")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option("auto", PRECISION_HELP)
    json: str | None = option(None, "also write the results as JSON to this path", output="file")
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        self.models = tuple(self.models)
        check_ranges(self)
        check_precision(self.precision)
        require_values(self, "models")
