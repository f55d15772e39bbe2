"""``tokenmix demo``: train FNet and BERT side by side on generated ListOps for the same wall time.

The point of FNet is that Fourier mixing is much cheaper than attention on long sequences, so in a
fixed time budget it takes many more optimiser steps. The demo shows that in about two minutes on a
laptop CPU: each model trains for ``seconds`` on the same generated data (real padding, passed as
``attention_mask``) with the training engine (:mod:`tokenmix.train.engine`, a learning-rate warm-up over
the first tenth of the budget), then is scored on a held-out split next to the majority-class baseline.

Each model runs in a fresh process so its peak memory is its own (CPU memory can only be measured per
process; see :mod:`tokenmix.bench.measure`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from tokenmix.bench.measure import PeakMemory, run_isolated
from tokenmix.devices import device_name, resolve_device
from tokenmix.io.files import claim_outputs, write_json
from tokenmix.lra import listops
from tokenmix.models.factory import create_model
from tokenmix.models.registry import get_variant
from tokenmix.reporting.tables import render_table
from tokenmix.train.configs import DemoConfig
from tokenmix.train.distributed import DistributedContext
from tokenmix.train.engine import Batch, Engine, MeanLoss, TrainSettings

WARMUP_FRACTION = 0.1  # linear lr warm-up over the first 10% of each model's time budget
EVAL_SEED_OFFSET = 1_000_003  # the eval split's seed, distinct from the training seed


def _examples(config: DemoConfig, size: int, seed: int, exclude: Collection[str] = ()) -> list[tuple[list[str], int]]:
    return listops.generate_examples(size, seed, max_depth=config.max_depth, max_args=config.max_args,
                                     max_length=config.seq_len - 1, exclude=exclude)


def _shuffled_batches(tensors: list[torch.Tensor], batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
    """Batches of (input_ids, attention_mask, labels), reshuffled every epoch, endlessly."""
    input_ids, attention_mask, labels = tensors
    while True:
        for index in torch.randperm(len(labels), generator=generator).split(batch_size):
            index = index.to(labels.device)
            yield {"input_ids": input_ids[index], "attention_mask": attention_mask[index], "labels": labels[index]}


def _accuracy(model: nn.Module, tensors: list[torch.Tensor], batch_size: int) -> dict[str, float]:
    input_ids, attention_mask, labels = tensors
    correct = 0
    for index in torch.arange(len(labels)).split(batch_size):
        logits = model(input_ids[index], attention_mask=attention_mask[index]).logits
        correct += int((logits.argmax(-1) == labels[index]).sum())
    return {"accuracy": correct / len(labels)}


def _train_and_evaluate(config: DemoConfig, name: str) -> dict[str, Any]:
    """Train one model for ``config.seconds`` and score it; runs in its own process (module-level so
    that a spawned interpreter can import it)."""
    device = resolve_device(config.device)
    train_examples = _examples(config, config.train_size, config.seed)
    seen = {" ".join(tokens) for tokens, _ in train_examples}
    eval_examples = _examples(config, config.eval_size, config.seed + EVAL_SEED_OFFSET, exclude=seen)
    train = [t.to(device) for t in listops.to_tensors(train_examples, config.seq_len)]
    held_out = [t.to(device) for t in listops.to_tensors(eval_examples, config.seq_len)]

    torch.manual_seed(config.seed)
    stream = _shuffled_batches(train, config.batch_size, torch.Generator().manual_seed(config.seed))  # same for every model
    settings = TrainSettings(
        learning_rate=config.learning_rate, max_time=config.seconds, evaluate_at_stop=False, desc=name,
        precision=config.precision,
        schedule=lambda step, seconds: min(1.0, (seconds + 1e-3) / (WARMUP_FRACTION * config.seconds)))
    with PeakMemory(device) as memory:  # the model's weights count too
        model = create_model(name, config.preset, head="classification", num_labels=listops.NUM_CLASSES,
                             vocab_size=listops.VOCAB_SIZE, max_position_embeddings=config.seq_len)
        engine = Engine(model, settings, DistributedContext.single(device))
        result = engine.run(lambda step: [next(stream)], MeanLoss())
    accuracy = engine.evaluate(lambda trained: _accuracy(trained, held_out, config.batch_size))["accuracy"]
    return {
        "model": name,
        "preset": config.preset,
        "params": model.num_parameters(),
        "seq_len": config.seq_len,
        "batch_size": config.batch_size,
        "steps": result.step,
        "steps_per_s": result.steps_per_s,
        "tokens_per_s": result.steps_per_s * config.batch_size * config.seq_len,
        "peak_mem_bytes": memory.bytes,
        "train_seconds": result.train_seconds,
        "accuracy": accuracy,
        "majority_baseline": int(torch.bincount(held_out[2], minlength=listops.NUM_CLASSES).max()) / config.eval_size,
        "device": device_name(device),
    }


def run_demo(config: DemoConfig) -> list[dict[str, Any]]:
    """Train and score each of ``config.models`` in turn, each in a fresh process; one dict per model."""
    claim_outputs(config)  # an existing output is refused unless config.overwrite, before any work
    for name in config.models:
        get_variant(name)  # unknown names fail here, before any model trains
    results = [run_isolated(_train_and_evaluate, config, name) for name in config.models]
    if config.json:
        write_json(config.json, {"config": asdict(config), "results": results})
    return results


def format_demo_table(results: list[dict[str, Any]]) -> str:
    """One row per model plus each model's speed relative to the last (baseline) model. Tokens/s
    counts padding too: every position costs compute whether or not it holds a real token."""
    if not results:
        return "(no results)"
    first = results[0]
    title = (f"ListOps demo: preset {first['preset']}, seq_len {first['seq_len']}, batch {first['batch_size']}, "
             f"~{first['train_seconds']:.0f} s of training per model on {first['device']}")
    headers = ["model", "params", "steps", "steps/s", "tokens/s", "peak MB", "accuracy", "majority"]
    rows = [[r["model"], f"{r['params']:,}", str(r["steps"]), f"{r['steps_per_s']:.2f}", f"{r['tokens_per_s']:,.0f}",
             f"{r['peak_mem_bytes'] / 2**20:.0f}", f"{r['accuracy']:.1%}", f"{r['majority_baseline']:.1%}"]
            for r in results]
    base = results[-1]
    ratios = [f"{r['model']}: {r['steps_per_s'] / base['steps_per_s']:.1f}x the steps/s of {base['model']}"
              for r in results[:-1] if base["steps_per_s"] > 0]
    return "\n".join([title, "", render_table(headers, rows), *([""] + ratios if ratios else [])])
