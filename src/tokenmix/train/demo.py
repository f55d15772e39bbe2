"""``tokenmix demo``: train FNet and BERT side by side on generated ListOps for the same wall time.

The point of FNet is that Fourier mixing is much cheaper than attention on long sequences, so in a
fixed time budget it takes many more optimiser steps. The demo shows that in about two minutes on a
laptop CPU: each model trains for ``seconds`` of wall time on the same generated data (real padding,
passed as ``attention_mask``), then is scored on a held-out split next to the majority-class baseline.

Each model runs in a fresh process so its peak memory is its own (CPU memory can only be measured per
process; see :mod:`tokenmix.bench.measure`). This module imports torch only inside functions, so the CLI can
read :class:`DemoConfig` to build its flags without paying for the torch import.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tokenmix.reporting.tables import render_table

WARMUP_FRACTION = 0.1  # linear lr warm-up over the first 10% of each model's time budget
EVAL_SEED_OFFSET = 1_000_003  # the eval split's seed, distinct from the training seed


@dataclass
class DemoConfig:
    models: tuple[str, ...] = field(default=("fnet", "bert"), metadata={"help": "registered model names; the last one is the baseline of the speed ratios"})
    preset: str = field(default="tiny", metadata={"help": "size preset of every model"})
    seq_len: int = field(default=1024, metadata={"help": "padded sequence length (expressions are shorter; the rest is padding)"})
    batch_size: int = field(default=16, metadata={"help": "examples per training step"})
    seconds: float = field(default=45.0, metadata={"help": "wall-clock training budget per model, in seconds (the default demo takes ~2 minutes on a 2-core CPU)"})
    train_size: int = field(default=8000, metadata={"help": "generated training examples (reshuffled each epoch)"})
    eval_size: int = field(default=400, metadata={"help": "held-out examples scored after training (disjoint from the training set)"})
    learning_rate: float = field(default=5e-4, metadata={"help": "peak AdamW learning rate, reached by a linear warm-up over the first tenth of the budget"})
    max_depth: int = field(default=1, metadata={"help": "ListOps nesting depth (1 = a flat list like [MAX 2 9 0 ])"})
    max_args: int = field(default=5, metadata={"help": "most arguments per ListOps operator (at least 2)"})
    seed: int = field(default=0, metadata={"help": "seed of the data and of each model's initialisation"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    json: str | None = field(default=None, metadata={"help": "also write the results as JSON to this path"})

    def __post_init__(self) -> None:
        self.models = tuple(self.models)
        if not self.models:
            raise ValueError("models is empty; name at least one model (see `tokenmix models`)")
        for name in ("seq_len", "batch_size", "train_size", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.seconds <= 0 or self.learning_rate <= 0:
            raise ValueError(f"seconds and learning_rate must be positive, got {self.seconds} and {self.learning_rate}")


def _task_kwargs(config: DemoConfig) -> dict[str, int]:
    return dict(max_depth=config.max_depth, max_args=config.max_args, max_length=config.seq_len - 1)


def _train_and_evaluate(config: DemoConfig, name: str) -> dict[str, Any]:
    """Train one model for ``config.seconds`` and score it; runs in its own process (module-level so
    that a spawned interpreter can import it)."""
    import torch
    from tqdm.auto import tqdm

    from tokenmix.bench.measure import PeakMemory, device_name, resolve_device, synchronize
    from tokenmix.lra import listops_grammar as listops
    from tokenmix.models.factory import create_model
    from tokenmix.train.optim import adamw

    device = resolve_device(config.device)
    task = _task_kwargs(config)
    train_examples = listops.generate_examples(config.train_size, config.seed, **task)
    seen = {" ".join(tokens) for tokens, _ in train_examples}
    eval_examples = listops.generate_examples(config.eval_size, config.seed + EVAL_SEED_OFFSET, exclude=seen, **task)
    train = [t.to(device) for t in listops.to_tensors(train_examples, config.seq_len)]
    held_out = [t.to(device) for t in listops.to_tensors(eval_examples, config.seq_len)]

    torch.manual_seed(config.seed)
    order = torch.Generator().manual_seed(config.seed)  # same batches for every model
    with PeakMemory(device) as memory:
        model = create_model(name, config.preset, head="classification", num_labels=listops.NUM_CLASSES,
                             vocab_size=listops.VOCAB_SIZE, max_position_embeddings=config.seq_len).to(device)
        # BERT convention: no weight decay on biases and LayerNorm scales.
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        optimizer = adamw(groups, lr=config.learning_rate)
        model.train()
        steps, loss_ema, batches = 0, None, iter(())
        bar = tqdm(total=config.seconds, desc=name, unit="s", mininterval=0.5,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}")
        synchronize(device)
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < config.seconds:
            index = next(batches, None)
            if index is None:  # new epoch
                batches = iter(torch.randperm(config.train_size, generator=order).split(config.batch_size))
                index = next(batches)
            index = index.to(device)
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * min(1.0, (elapsed + 1e-3) / (WARMUP_FRACTION * config.seconds))
            loss = model(train[0][index], attention_mask=train[1][index], labels=train[2][index]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            value = loss.item()  # also synchronises, so the clock below is honest on CUDA
            loss_ema = value if loss_ema is None else 0.9 * loss_ema + 0.1 * value
            elapsed = time.perf_counter() - start
            bar.update(min(elapsed, config.seconds) - bar.n)
            bar.set_postfix(loss=f"{loss_ema:.3f}", steps_s=f"{steps / elapsed:.2f}", steps=steps, refresh=False)
        bar.close()

    model.eval()
    correct = 0
    with torch.inference_mode():
        for index in torch.arange(config.eval_size).split(config.batch_size):
            logits = model(held_out[0][index], attention_mask=held_out[1][index]).logits
            correct += int((logits.argmax(-1) == held_out[2][index]).sum())
    labels = held_out[2]
    return {
        "model": name,
        "preset": config.preset,
        "params": model.num_parameters(),
        "seq_len": config.seq_len,
        "batch_size": config.batch_size,
        "steps": steps,
        "steps_per_s": steps / elapsed,
        "tokens_per_s": steps * config.batch_size * config.seq_len / elapsed,
        "peak_mem_bytes": memory.bytes,
        "train_seconds": elapsed,
        "accuracy": correct / config.eval_size,
        "majority_baseline": int(torch.bincount(labels, minlength=listops.NUM_CLASSES).max()) / config.eval_size,
        "device": device_name(device),
    }


def run_demo(config: DemoConfig) -> list[dict[str, Any]]:
    """Train and score each of ``config.models`` in turn, each in a fresh process; one dict per model."""
    from tokenmix.bench.measure import run_isolated
    from tokenmix.models.registry import get_variant

    for name in config.models:
        get_variant(name)  # unknown names fail here, before any model trains
    results = [run_isolated(_train_and_evaluate, config, name) for name in config.models]
    if config.json:
        from tokenmix.io.files import write_json

        write_json(config.json, {"config": asdict(config), "results": results})
    return results


def format_table(results: list[dict[str, Any]]) -> str:
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
