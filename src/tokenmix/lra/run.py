"""``tokenmix lra run TASK`` and ``tokenmix lra eval TASK``: train from scratch with the shared
trainer (:func:`tokenmix.train.loop.fit_sweep`), then score the *best-validation* checkpoint on test
(the last checkpoint is not used: LRA ListOps curves peak and collapse, see long-range-arena#15).

``summary.json`` holds test and validation accuracy, the majority-class baseline of the test split,
steps/s, peak memory, the data statistics (malformed rows, truncations, lengths) and the settings.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tokenmix.options import option
from tokenmix.train.loop import FitConfig

SUMMARY = "summary.json"
# A run that ends below this many percentage points over the majority class is flagged as "at chance".
CHANCE_MARGIN = 1.0


@dataclass
class DataFlags:
    """Data options shared by ``lra run`` and ``lra eval``."""

    data_dir: str = option("", "folder in the task's official format; listops/pathfinder without it: generated data")
    cache_dir: str = option("runs/lra-data", "where generated data and encoded splits are cached")
    on_overflow: str = option("truncate", "a sequence longer than the task allows: truncate (counted) or error")
    difficulty: str = option("hard", "pathfinder: easy, intermediate or hard (contour length 6/9/14; LRA: hard)")
    train_size: int = option(0, "generated tasks: training examples (0 = published size: ListOps 96k, Pathfinder 160k)")
    eval_size: int = option(0, "generated tasks: validation and test examples each (0 = published: 2k / 20k)")
    val_size: int = option(2000, "examples held out of train for validation when the data has no validation file")
    max_len: int = option(0, "keep the first N tokens of every sequence (0 = the task's full length; eval: the "
                             "model's); shorter trains faster, and the examples cut are counted")
    workers: int = option(0, "processes generating Pathfinder images (0 = one per CPU core; same images for any number)")

    def check_data_flags(self) -> None:
        for name in ("train_size", "eval_size", "max_len", "workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0 (0 = the default), got {getattr(self, name)}")


@dataclass
class LRARunConfig(FitConfig, DataFlags):
    task: str = option("", "listops, text, retrieval, image, pathfinder32/64/128 (pathfinder = 32, path-x = 128)",
                       positional=True)
    model: str = option("fnet", "registered model name (see `tokenmix models`)")
    preset: str = option("lra", "lra = the task's official LRA base config; or a size preset (tiny, mini, ...)")
    pooling: str = option("", "cls or mean (default: the task's official pooling)")
    override: tuple[str, ...] = option((), "model config overrides, e.g. num_layers=2,dropout=0.0")
    out: str = option("", "run directory (default: runs/lra/TASK-MODEL)")
    lr: tuple[float, ...] = option((0.0,), "peak AdamW learning rate(s) (0 = the task default); several = a sweep")
    batch_size: int = option(0, "examples per step (0 = the task's official batch size)")
    epochs: float = option(0.0, "passes over the training data (0 = the task default)")
    weight_decay: float = option(-1.0, "AdamW weight decay (-1 = the task's official value)")
    eval_batch_size: int = option(64, "examples per evaluation batch")

    def __post_init__(self) -> None:
        from tokenmix.lra.tasks import get_task

        if not self.task:
            raise ValueError("missing TASK: one of listops, text, retrieval, image, pathfinder32, pathfinder64, pathfinder128")
        spec = get_task(self.task)
        self.task = spec.name
        defaults = spec.train
        if self.lr == (0.0,):
            self.lr = (defaults["learning_rate"],)
        self.batch_size = self.batch_size or defaults["batch_size"]
        if self.weight_decay < 0:
            self.weight_decay = defaults["weight_decay"]
        if not self.max_steps and not self.epochs:
            self.max_steps, self.epochs = defaults.get("max_steps", 0), defaults.get("epochs", 0.0)
        self.pooling = self.pooling or spec.pooling
        self.out = self.out or f"runs/lra/{spec.name}-{self.model}"
        from tokenmix.models.registry import get_variant

        get_variant(self.model)
        super().__post_init__()
        self.check_data_flags()
        if self.eval_batch_size < 1:
            raise ValueError(f"--eval-batch-size must be >= 1, got {self.eval_batch_size}")


def data_options(config: Any, pooling: str) -> Any:
    from tokenmix.lra.data import DataOptions

    return DataOptions(data_dir=config.data_dir or None, cache_dir=config.cache_dir, seed=config.seed, pooling=pooling,
                       on_overflow=config.on_overflow, train_size=config.train_size or None,
                       eval_size=config.eval_size or None, val_size=config.val_size, difficulty=config.difficulty,
                       max_len=config.max_len or None, workers=config.workers or os.cpu_count() or 1)


def accuracy(model: Any, split: Any, batch_size: int) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``split`` (eval mode, no gradients)."""
    import torch

    from tokenmix.lra.data import iter_batches

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.inference_mode():
        for batch in iter_batches(split, batch_size):
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(**batch)
            correct += int((out.logits.argmax(-1) == batch["labels"]).sum())
            loss_sum += float(out.loss) * len(batch["labels"])
    model.train(was_training)
    return {"accuracy": correct / len(split), "loss": loss_sum / len(split)}


def majority(split: Any) -> float:
    import numpy as np

    return float(np.bincount(split.labels).max() / len(split))


def root_op_baseline(train: Any, test: Any, pooling: str) -> float:
    """ListOps: test accuracy of predicting, for each outermost operator, its most frequent training
    label. A model that only learned which operator comes first scores this (about a third), so a
    result near it has not yet learned to read the nested arguments."""
    import numpy as np

    column = int(pooling == "cls")  # the first token of the expression
    table = np.zeros((int(train.input_ids.max()) + 1, 10), dtype=np.int64)
    np.add.at(table, (train.input_ids[:, column], train.labels), 1)
    return float((table.argmax(1)[test.input_ids[:, column]] == test.labels).mean())


def run_lra(config: LRARunConfig) -> dict[str, Any]:
    import numpy as np
    import torch

    from tokenmix.io.files import write_json
    from tokenmix.lra.data import load_task_splits
    from tokenmix.lra.models import HEAD_NAME, HeadConfig, build_lra_model, load_lra_model
    from tokenmix.lra.tasks import get_task
    from tokenmix.models.config import parse_overrides
    from tokenmix.train.loop import fit_sweep

    task, out = get_task(config.task), Path(config.out)
    seq_len = min(config.max_len or task.seq_len, task.seq_len)
    data = load_task_splits(task, data_options(config, config.pooling))
    train, val, test = data["train"], data["val"], data["test"]
    for name, split in data.items():
        if split.stats.get("malformed_rows") or split.stats.get("truncated"):
            print(f"note: {task.name} {name}: {split.stats.get('malformed_rows', 0)} malformed rows skipped, "
                  f"{split.stats.get('truncated', 0)} examples truncated to {seq_len} tokens", file=sys.stderr)
    head = HeadConfig(task.name, task.num_classes, config.pooling, task.dual)
    overrides = parse_overrides(config.override)

    def make_model() -> Any:
        torch.manual_seed(config.seed)
        return build_lra_model(config.model, config.preset, head, overrides, seq_len)

    steps_per_epoch = len(train) // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{len(train)} training examples give no batch of {config.batch_size}; lower --batch-size")

    def batches(epoch: int) -> Any:
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train))
        for start in range(0, steps_per_epoch * config.batch_size, config.batch_size):
            yield train.batch(order[start : start + config.batch_size])

    def evaluate(model: Any) -> dict[str, float]:
        return accuracy(model, val, config.eval_batch_size)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / HEAD_NAME, asdict(head))
    sweep = fit_sweep(make_model, batches, steps_per_epoch, evaluate, config, out, "accuracy",
                      desc=f"{task.name} {config.model}")
    write_json(out / "best" / HEAD_NAME, asdict(head))
    best = load_lra_model(out / "best").to(_device(config))
    run = sweep["runs"][f"{sweep['best_lr']:g}"]
    # Validation scores of the chosen checkpoint come from the trainer's history (no second pass).
    scores = {"val": {k: run["best"][k] for k in ("accuracy", "loss")}, "test": accuracy(best, test, config.eval_batch_size)}
    summary = {
        "kind": "lra", "task": task.name, "model": config.model, "preset": config.preset, "pooling": config.pooling,
        "params": best.num_parameters(), "model_config": best.config.to_dict(),
        "test_accuracy": scores["test"]["accuracy"], "val_accuracy": scores["val"]["accuracy"], "scores": scores,
        "majority_baseline": majority(test),
        "best_step": run["best_step"], "steps": run["steps"], "steps_per_s": run["steps_per_s"],
        "train_seconds": run["train_seconds"], "stop_reason": run["stop_reason"], "peak_memory_mib": run["peak_memory_mib"],
        "device": run["device"], "best_lr": sweep["best_lr"],
        "data": {name: split.stats for name, split in data.items()},
        "sizes": {name: len(split) for name, split in data.items()}, "config": asdict(config),
    }
    if task.name == "listops":
        summary["root_op_baseline"] = root_op_baseline(train, test, config.pooling)
    summary["at_chance"] = 100 * (summary["test_accuracy"] - summary["majority_baseline"]) < CHANCE_MARGIN
    write_json(out / SUMMARY, summary)
    return summary


def _device(config: Any) -> Any:
    from tokenmix.bench.measure import resolve_device

    return resolve_device(config.device)


@dataclass
class LRAEvalConfig(DataFlags):
    task: str = option("", "the task of the data (listops, text, retrieval, image, pathfinder32/64/128)",
                       positional=True)
    checkpoint: str = option("", "run directory of `tokenmix lra run` (its best/ model) or a model folder")
    split: str = option("test", "train, val or test")
    batch_size: int = option(64, "examples per batch")
    seed: int = option(0, "seed of generated data and of held-out validation rows")
    device: str = option("auto", "auto, cpu, cuda")
    json: str | None = option(None, "also write the result to this JSON file")

    def __post_init__(self) -> None:
        from tokenmix.lra.data import SPLITS
        from tokenmix.lra.tasks import get_task

        if not self.task or not self.checkpoint:
            raise ValueError("lra eval needs a TASK and --checkpoint RUN_DIR")
        self.task = get_task(self.task).name
        self.check_data_flags()
        if self.split not in SPLITS:
            raise ValueError(f"--split {self.split!r} is not valid; choose one of {', '.join(SPLITS)}")


def run_eval(config: LRAEvalConfig) -> dict[str, Any]:
    from tokenmix.io.files import write_json
    from tokenmix.lra.data import load_task_splits
    from tokenmix.lra.models import load_lra_model
    from tokenmix.lra.tasks import get_task

    model = load_lra_model(config.checkpoint).to(_device(config))
    if model.head_config.task != config.task:
        raise ValueError(f"{config.checkpoint} was trained on {model.head_config.task!r}, not {config.task!r}")
    options = data_options(config, model.head_config.pooling)
    # A model trained on the first N tokens (`lra run --max-len N`) reads the same N by default.
    options.max_len = options.max_len or model.config.max_position_embeddings - (model.head_config.pooling == "cls")
    split = load_task_splits(get_task(config.task), options, (config.split,))[config.split]
    scores = accuracy(model, split, config.batch_size)
    result = {"task": config.task, "checkpoint": config.checkpoint, "split": config.split, "examples": len(split),
              **scores, "majority_baseline": majority(split), "data": split.stats, "model": model.config.variant}
    if config.task == "listops":  # the rule fitted on the scored split itself: how lucky the split is for it
        result["root_op_baseline"] = root_op_baseline(split, split, model.head_config.pooling)
    if config.json:
        write_json(config.json, result)
    return result


def summaries(paths: Any) -> list[dict[str, Any]]:
    """Every ``summary.json`` of kind ``lra`` under the given run directories."""
    found = []
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"no such run directory: {root}")
        for path in sorted([root] if root.is_file() else root.rglob(SUMMARY)):
            record = json.loads(path.read_text())
            if record.get("kind") == "lra":
                found.append({**record, "path": str(path.parent)})
    return found
