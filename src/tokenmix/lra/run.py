"""``tokenmix lra run TASK`` and ``tokenmix lra eval TASK``: train from scratch with the shared
trainer (:func:`tokenmix.train.supervised.fit_sweep`), then score the *best-validation* checkpoint on test
(the last checkpoint is not used: LRA ListOps curves peak and collapse, see long-range-arena#15).

``summary.json`` holds test and validation accuracy, the majority-class baseline of the test split,
steps/s, peak memory, the data statistics (malformed rows, truncations, lengths) and the settings.
The model in ``best/`` is a plain model folder whose config names its task (``lra_task``), so
``lra eval`` refuses a model trained on another task.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from tokenmix.devices import autocast, resolve_device
from tokenmix.io.files import claim_outputs, write_json
from tokenmix.lra.configs import LRAEvalConfig, LRARunConfig
from tokenmix.lra.data import load_task_splits
from tokenmix.lra.models import load_lra_model
from tokenmix.lra.splits import DataOptions, Split, iter_batches
from tokenmix.lra.table import SUMMARY
from tokenmix.lra.tasks import SPLITS, get_lra_task, lra_model_config
from tokenmix.models.config import parse_overrides
from tokenmix.models.encoder import TokenMixPreTrainedModel
from tokenmix.models.factory import build_model
from tokenmix.train.supervised import claim_sweep_dir, fit_sweep

# A run that ends below this many percentage points over the majority class is flagged as "at chance".
CHANCE_MARGIN = 1.0


def data_options(config: LRARunConfig | LRAEvalConfig, pooling: str) -> DataOptions:
    return DataOptions(data_dir=config.data_dir or None, cache_dir=config.cache_dir, seed=config.seed, pooling=pooling,
                       on_overflow=config.on_overflow, train_size=config.train_size or None,
                       eval_size=config.eval_size or None, val_size=config.val_size, difficulty=config.difficulty,
                       max_len=config.max_len or None, workers=config.workers or os.cpu_count() or 1)


def accuracy(model: nn.Module, split: Split, batch_size: int) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``split`` (eval mode, no gradients)."""
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


def majority(split: Split) -> float:
    return float(np.bincount(split.labels).max() / len(split))


def root_op_baseline(train: Split, test: Split, pooling: str) -> float:
    """ListOps: test accuracy of predicting, for each outermost operator, its most frequent training
    label. A model that only learned which operator comes first scores this (about a third), so a
    result near it has not yet learned to read the nested arguments."""
    column = int(pooling == "cls")  # the first token of the expression
    table = np.zeros((int(train.input_ids.max()) + 1, 10), dtype=np.int64)
    np.add.at(table, (train.input_ids[:, column], train.labels), 1)
    return float((table.argmax(1)[test.input_ids[:, column]] == test.labels).mean())


def run_lra(config: LRARunConfig) -> dict[str, Any]:
    task, out = get_lra_task(config.task), claim_sweep_dir(config.out, config)  # before the data is loaded
    seq_len = min(config.max_len or task.seq_len, task.seq_len)
    data = load_task_splits(task, data_options(config, config.pooling))
    train, val, test = data["train"], data["val"], data["test"]
    for name, split in data.items():
        if split.stats.get("malformed_rows") or split.stats.get("truncated"):
            print(f"note: {task.name} {name}: {split.stats.get('malformed_rows', 0)} malformed rows skipped, "
                  f"{split.stats.get('truncated', 0)} examples truncated to {seq_len} tokens", file=sys.stderr)
    model_config = lra_model_config(config.model, task, config.preset, config.pooling, parse_overrides(config.override),
                                    seq_len)

    def make_model() -> TokenMixPreTrainedModel:
        torch.manual_seed(config.seed)
        return build_model(model_config)

    steps_per_epoch = len(train) // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{len(train)} training examples give no batch of {config.batch_size}; lower --batch-size")

    def batches(epoch: int) -> Iterator[dict[str, Any]]:
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train))
        for start in range(0, steps_per_epoch * config.batch_size, config.batch_size):
            yield train.batch(order[start : start + config.batch_size])

    def evaluate(model: nn.Module) -> dict[str, float]:
        return accuracy(model, val, config.eval_batch_size)

    out.mkdir(parents=True, exist_ok=True)
    sweep = fit_sweep(make_model, batches, steps_per_epoch, evaluate, config, out, "accuracy",
                      desc=f"{task.name} {config.model}")
    device = resolve_device(config.device)
    best = load_lra_model(out / "best").to(device)
    run = sweep["runs"][f"{sweep['best_lr']:g}"]
    # Validation scores of the chosen checkpoint come from the trainer's history (no second pass).
    with autocast(config.precision, device):
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


def run_eval(config: LRAEvalConfig) -> dict[str, Any]:
    claim_outputs(config)  # an existing output is refused unless config.overwrite, before any work
    device = resolve_device(config.device)
    model = load_lra_model(config.checkpoint).to(device)
    trained_on, pooling = model.config.lra_task, model.config.pooling
    if trained_on != config.task:
        raise ValueError(f"{config.checkpoint} was trained on {trained_on!r}, not {config.task!r}")
    options = data_options(config, pooling)
    # A model trained on the first N tokens (`lra run --max-len N`) reads the same N by default.
    options.max_len = options.max_len or model.config.max_position_embeddings - (pooling == "cls")
    names = SPLITS if config.split == "all" else (config.split,)
    split = Split.concat(load_task_splits(get_lra_task(config.task), options, names))
    with autocast(config.precision, device):
        scores = accuracy(model, split, config.batch_size)
    result = {"task": config.task, "checkpoint": config.checkpoint, "data_dir": config.data_dir or "generated",
              "split": config.split, "examples": len(split), **scores, "majority_baseline": majority(split),
              "data": split.stats, "model": model.config.variant}
    if config.task == "listops":  # the rule fitted on the scored split itself: how lucky the split is for it
        result["root_op_baseline"] = root_op_baseline(split, split, pooling)
    if config.json:
        write_json(config.json, result)
    return result
