"""Fine-tuning on a GLUE task: ``tokenmix finetune --task sst2 --init RUN_DIR --data-dir DIR --out DIR``.

Starts from any tokenmix model folder or run directory (pretraining, a converted Hugging Face FNet,
another fine-tuned model) or from random initialisation (``--init scratch``); the pretraining head is
dropped and a new classification / regression head initialised, with a fresh AdamW state (the
official code restores the pretraining optimizer moments; we do not, as is standard practice).
The best model of the learning-rate sweep, judged on the first dev split, is evaluated on every
dev split; predictions files and ``metrics.json`` are written from the same arrays, so they agree.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..utils import atomic_write, write_json
from .loop import FitConfig, _f

TASK_FILE = "task.json"


@dataclass
class FinetuneOptions(FitConfig):
    """Settings shared by ``tokenmix finetune`` (one task) and ``tokenmix glue`` (all tasks)."""

    lr: tuple[float, ...] = _f((1e-5, 5e-5, 1e-4), "peak learning rates: one run each, the best on dev kept "
                                                  "(the paper's sweep; one value = no sweep)")
    batch_size: int = _f(64, "training examples per step (official GLUE recipe: 64)")
    init: str = _f("", "model folder or run directory to start from (pretraining run, converted Hugging Face "
                       "FNet, ...), or 'scratch' for random initialisation")
    model: str = _f("fnet", "with --init scratch: registered model name (see `tokenmix models`)")
    preset: str = _f("mini", "with --init scratch: size preset")
    override: tuple[str, ...] = _f((), "model config overrides, e.g. dropout=0.0")
    tokenizer: str = _f("", "tokenizer folder or file (default: the one next to --init, or of its pretraining data)")
    data_dir: str = _f("", "GLUE folder in the official layout (TASK/train.tsv, dev.tsv, test.tsv)")
    out: str = _f("", "output directory")
    max_seq_len: int = _f(128, "tokens per example; longer inputs are truncated (and counted); models that mix "
                              "with a fixed transform (FNet, Linear...) are always padded to exactly this length")
    eval_batch_size: int = _f(128, "examples per evaluation batch")
    max_train_examples: int = _f(0, "use a random subset of at most N training examples (0 = all)")
    train_from_dev: float = _f(0.0, "for a task without train.tsv (e.g. QNLI here): train on this fraction of its dev "
                                    "split and evaluate on the rest (a seeded split, recorded as the protocol)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.init:
            raise ValueError("missing --init: a model folder / run directory, or 'scratch' with --model and --preset")
        if not self.data_dir:
            raise ValueError("missing --data-dir: a folder in the official GLUE layout (e.g. ../shared/data/glue)")
        if not self.out:
            raise ValueError("missing --out: the output directory")
        if self.max_seq_len < 4 or self.eval_batch_size < 1 or self.max_train_examples < 0:
            raise ValueError("max_seq_len must be >= 4, eval_batch_size >= 1, max_train_examples >= 0")
        if not 0 <= self.train_from_dev < 1:
            raise ValueError(f"--train-from-dev must be a fraction in [0, 1), got {self.train_from_dev}")


@dataclass
class FinetuneConfig(FinetuneOptions):
    task: str = _f("", "GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli")

    def __post_init__(self) -> None:
        from ..tasks.glue import get_task

        super().__post_init__()
        if not self.task:
            raise ValueError("missing --task (one of cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli)")
        get_task(self.task)


def find_tokenizer(init: str, explicit: str = "") -> Any:
    """``--tokenizer``, else a tokenizer stored with the model / run, else the one the run's
    pretraining data was prepared with (recorded in the data folder's ``meta.json``)."""
    from ..checkpoint import find_model_dir
    from ..tokenizer import Tokenizer

    if explicit:
        return Tokenizer.load(explicit)
    if init != "scratch":
        model_dir = find_model_dir(init)
        for folder in dict.fromkeys((model_dir, Path(init), model_dir.parent, model_dir.parent.parent)):
            if (folder / "tokenizer.json").is_file() or any(folder.glob("*.model")):
                return Tokenizer.load(folder)
            record = folder / "train_config.json"
            if record.is_file():
                meta = Path(json.loads(record.read_text()).get("data", "")) / "meta.json"
                if meta.is_file():
                    return Tokenizer.load(json.loads(meta.read_text())["config"]["tokenizer"])
    raise FileNotFoundError(f"no tokenizer found for --init {init}; pass --tokenizer (a folder with tokenizer.json, "
                            f"e.g. one trained with `tokenmix tokenizer train`)")


def build_task_model(options: FinetuneOptions, num_labels: int, regression: bool, vocab_size: int, pad_id: int) -> Any:
    """A classification / regression model from ``--init`` (encoder weights kept, new head)."""
    import torch

    from ..checkpoint import load_pretrained
    from ..config import parse_overrides
    from ..modeling import build_model
    from ..registry import make_config

    head = "regression" if regression else "classification"
    overrides = {"head": head, "num_labels": num_labels, **parse_overrides(options.override)}
    torch.manual_seed(options.seed)  # the new head's initialisation
    if options.init == "scratch":
        overrides.setdefault("max_position_embeddings", max(512, options.max_seq_len))
        model = build_model(make_config(options.model, options.preset, vocab_size=vocab_size, pad_token_id=pad_id,
                                        **overrides))
    else:
        model = load_pretrained(options.init, **overrides)
    config = model.config
    if vocab_size > config.vocab_size:
        raise ValueError(f"the tokenizer has {vocab_size} tokens but the model's vocabulary is {config.vocab_size}: "
                         f"they do not belong together; pass the --tokenizer the model was pretrained with")
    if options.max_seq_len > config.max_position_embeddings:
        raise ValueError(f"--max-seq-len {options.max_seq_len} exceeds the model's max_position_embeddings="
                         f"{config.max_position_embeddings}; lower --max-seq-len")
    return model


def _subset(examples: list, limit: int, seed: int) -> list:
    if not limit or len(examples) <= limit:
        return examples
    return random.Random(seed).sample(examples, limit)


def split_dev(dev: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """A seeded (train, held-out) partition of a dev split, for tasks whose train split is missing."""
    from ..tasks.glue import Split

    order = list(range(len(dev.examples)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * fraction)
    if cut < 1 or cut == len(order):
        raise ValueError(f"--train-from-dev {fraction} leaves no training or no evaluation examples of {dev.path}")
    held_out = sorted(order[cut:])  # evaluation rows keep their file order
    return (Split(dev.task, "train", dev.path, [dev.examples[i] for i in order[:cut]]),
            Split(dev.task, dev.name, dev.path, [dev.examples[i] for i in held_out], dev.skipped))


def write_predictions(path: Path, task: Any, indices: list, values: list) -> None:
    """``index<TAB>prediction`` with labels spelt as in the GLUE files (the GLUE server format)."""
    from ..tasks.glue import label_name

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["index\tprediction"] + [f"{i}\t{label_name(task, v)}" for i, v in zip(indices, values)]
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


def run_finetune(config: FinetuneConfig, submission_dir: Path | None = None) -> dict[str, Any]:
    """Fine-tune, pick the best learning rate, evaluate and write predictions; returns ``metrics.json``."""
    from ..checkpoint import load_pretrained
    from ..data.text_pairs import PairBatches, encode, predict_logits
    from ..measure import resolve_device
    from ..metrics.glue import compute
    from ..tasks.glue import get_task, read_split
    from .loop import fit_sweep

    task, out = get_task(config.task), Path(config.out)
    tokenizer = find_tokenizer(config.init, config.tokenizer)
    evals = {name: read_split(config.data_dir, task, name) for name in task.eval_splits}
    first, protocol = task.eval_splits[0], ""
    if config.train_from_dev and not (Path(config.data_dir) / task.folder / "train.tsv").is_file():
        train, evals[first] = split_dev(evals[first], config.train_from_dev, config.seed)
        protocol = (f"no train.tsv: trained on {len(train.examples)} examples ({config.train_from_dev:.0%}) of "
                    f"{first}.tsv, evaluated on the other {len(evals[first].examples)} (seeded split)")
    else:
        train = read_split(config.data_dir, task, "train")
    tests = {name: read_split(config.data_dir, task, name) for name in task.test_splits  # optional
             if (Path(config.data_dir) / task.folder / f"{name}.tsv").is_file()}
    for split in (train, *evals.values(), *tests.values()):
        if split.skipped:
            print(f"warning: {split.describe_skipped()}", file=sys.stderr)
    for split in evals.values():
        if not split.labelled:
            raise ValueError(f"{split.path} has rows without a label; dev splits must be labelled")
    train_examples = _subset(train.examples, config.max_train_examples, config.seed)

    def make_model() -> Any:
        return build_task_model(config, task.num_labels, task.is_regression, tokenizer.vocab_size, tokenizer.pad_id)

    probe = make_model()
    fixed = config.max_seq_len if probe.config.length_dependent else None
    params, variant = probe.num_parameters(), probe.config.variant
    del probe

    def batches(examples: list, batch_size: int) -> tuple[PairBatches, int]:
        data = encode(tokenizer, examples, config.max_seq_len)
        return PairBatches(data, batch_size, tokenizer.pad_id, fixed, config.seed, task.is_regression), data.truncated

    train_batches, train_truncated = batches(train_examples, config.batch_size)
    eval_batches = {name: batches(split.examples, config.eval_batch_size) for name, split in evals.items()}
    test_batches = {name: batches(split.examples, config.eval_batch_size) for name, split in tests.items()}
    truncated = {"train": train_truncated, **{n: t for n, (_, t) in {**eval_batches, **test_batches}.items()}}
    if any(truncated.values()):
        print(f"note: truncated to {config.max_seq_len} tokens: "
              + ", ".join(f"{n} {c}" for n, c in truncated.items() if c), file=sys.stderr)

    def values(model: Any, pair_batches: PairBatches) -> list:
        logits = predict_logits(model, pair_batches)
        if task.is_regression:  # rounded as the predictions file writes them, so metrics.json agrees with it
            return [round(v, 3) for v in logits[:, 0].tolist()]
        return logits.argmax(-1).tolist()

    def evaluate(model: Any) -> dict[str, float]:
        return compute(task.metrics, values(model, eval_batches[first][0]), [e.label for e in evals[first].examples])

    sweep = fit_sweep(make_model, train_batches, len(train_batches), evaluate, config, out, task.score,
                      desc=f"{task.name} {variant}")
    best = load_pretrained(out / "best").to(resolve_device(config.device)).eval()
    splits: dict[str, Any] = {}
    for name, (pair_batches, _) in eval_batches.items():
        predicted = values(best, pair_batches)
        write_predictions(out / f"{name}_predictions.tsv", task, [e.idx for e in evals[name].examples], predicted)
        splits[name] = compute(task.metrics, predicted, [e.label for e in evals[name].examples])
    for name, (pair_batches, _) in test_batches.items():
        ids, predicted = [e.idx for e in tests[name].examples], values(best, pair_batches)
        write_predictions(out / f"{name}_predictions.tsv", task, ids, predicted)
        if submission_dir is not None:
            write_predictions(submission_dir / task.submission_name(name), task, ids, predicted)
    tokenizer.save(out / "best")
    write_json(out / "best" / TASK_FILE, {"task": task.name, "labels": task.labels, "max_seq_len": config.max_seq_len,
                                          "fixed_length": fixed is not None})
    chosen = sweep["runs"][f"{sweep['best_lr']:g}"]
    metrics = {
        "kind": "finetune", "task": task.name, "protocol": protocol, "model": variant, "init": config.init, "params": params,
        "score_metric": task.score, "score": splits[first][task.score], "splits": splits, "best_lr": sweep["best_lr"],
        "sweep": {lr: run["best"][task.score] for lr, run in sweep["runs"].items()},
        "train_examples": len(train_examples), "truncated": truncated,
        "skipped": {s.name: len(s.skipped) for s in (train, *evals.values(), *tests.values())},
        "steps": chosen["steps"], "steps_per_s": chosen["steps_per_s"], "train_seconds": chosen["train_seconds"],
        "fixed_length": fixed, "config": asdict(config),
    }
    write_json(out / "metrics.json", metrics)
    return metrics
