"""Speed and memory benchmark: every model measured side by side in one run.

Modes (what one "step" is):

* ``train``: fine-tuning step: encoder + pooled classifier, cross-entropy, backward, AdamW step
  (the quantity of the FNet paper's LRA speed table).
* ``pretrain``: MLM (15% of positions, logits at those positions only) + NSP loss, backward, AdamW.
* ``inference``: encoder forward under ``torch.inference_mode``.

Each configuration gets warm-up steps, then ``repeats`` timed steps; we report the median. Peak memory
on CPU is only measurable per process, so on CPU every configuration runs in a fresh process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..tables import mib, render_table
from ..utils import write_json

MODES = {"train": "classification", "pretrain": "pretraining", "inference": "none"}
AMP_DTYPES = ("none", "bf16", "fp16")


@dataclass
class SpeedBenchConfig:
    models: tuple[str, ...] = field(default=("fnet", "linear", "random", "ff_only", "hybrid", "bert"),
                                    metadata={"help": "registered model names"})
    preset: str = field(default="mini", metadata={"help": "size preset"})
    seq_lens: tuple[int, ...] = field(default=(128, 512, 2048), metadata={"help": "sequence lengths"})
    batch_size: int = field(default=8, metadata={"help": "examples per step"})
    mode: tuple[str, ...] = field(default=("train",), metadata={"help": "train, pretrain and/or inference"})
    warmup: int = field(default=2, metadata={"help": "untimed steps before measuring"})
    repeats: int = field(default=5, metadata={"help": "timed steps (the median is reported)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    amp: str = field(default="none", metadata={"help": "autocast dtype: none, bf16 or fp16"})
    fourier_impl: str = field(default="auto", metadata={"help": "Fourier transform: auto, fft or matmul"})
    isolate: bool = field(default=True, metadata={"help": "fresh process per configuration on CPU (needed for peak memory)"})
    baseline: str = field(default="bert", metadata={"help": "model the speed-up column is relative to"})
    seed: int = field(default=0, metadata={"help": "random seed for weights and inputs"})
    json: str | None = field(default=None, metadata={"help": "write the records to this JSON file"})

    def __post_init__(self) -> None:
        from ..registry import get_variant

        for name in self.models:
            get_variant(name)
        bad = [m for m in self.mode if m not in MODES]
        if bad:
            raise ValueError(f"unknown mode {', '.join(bad)}; choose from {', '.join(MODES)}")
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp={self.amp!r} is not valid; choose one of {', '.join(AMP_DTYPES)}")
        if min(self.seq_lens, default=0) < 1 or self.batch_size < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError("seq_lens, batch_size and repeats must be positive and warmup non-negative")


def make_batch(mode: str, vocab_size: int, batch_size: int, seq_len: int, device: Any, generator: Any) -> dict[str, Any]:
    """Random token ids (no padding) plus the labels the mode's head needs."""
    import torch

    def ints(high: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, high, shape, generator=generator).to(device)

    batch = {"input_ids": ints(vocab_size, batch_size, seq_len)}
    if mode == "train":
        batch["labels"] = ints(2, batch_size)
    elif mode == "pretrain":
        predictions = max(1, round(0.15 * seq_len))
        positions = torch.rand(batch_size, seq_len, generator=generator).argsort(dim=1)[:, :predictions]
        batch.update(masked_positions=positions.to(device), masked_labels=ints(vocab_size, batch_size, predictions),
                     next_sentence_labels=ints(2, batch_size))
    return batch


def measure(name: str, seq_len: int, mode: str, config: SpeedBenchConfig) -> dict[str, Any]:
    """Time one (model, length, mode) configuration in this process."""
    import torch

    from ..measure import PeakMemory, device_name, median, resolve_device, time_steps
    from ..mixing.fourier import resolve_impl
    from ..optim import adamw
    from ..registry import create_model

    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[config.amp]
    generator = torch.Generator().manual_seed(config.seed)
    with PeakMemory(device) as memory:
        model = create_model(name, config.preset, head=MODES[mode], fourier_impl=config.fourier_impl,
                             max_position_embeddings=max(seq_len, 512)).to(device)
        batch = make_batch(mode, model.config.vocab_size, config.batch_size, seq_len, device, generator)
        autocast = torch.autocast(device.type, dtype=amp, enabled=amp is not None)
        if mode == "inference":
            model.eval()

            def step() -> None:
                with torch.inference_mode(), autocast:
                    model(**batch)
        else:
            optimizer = adamw(model.parameters(), lr=1e-4)
            scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)

            def step() -> None:
                with autocast:
                    loss = model(**batch).loss
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)

        times = time_steps(step, device, config.warmup, config.repeats)
    ms = median(times)
    return {
        "model": name, "preset": config.preset, "seq_len": seq_len, "batch_size": config.batch_size, "mode": mode,
        "ms_per_step": round(ms, 3), "ms_min": round(min(times), 3),
        "tokens_per_s": round(config.batch_size * seq_len / (ms / 1e3), 1),
        "peak_mem_bytes": int(memory.bytes), "device": device_name(device), "params": model.num_parameters(),
        "amp": config.amp, "fourier_impl": resolve_impl(config.fourier_impl, device),
        "torch": torch.__version__, "warmup": config.warmup, "repeats": config.repeats,
    }


def _measure_or_fail(name: str, seq_len: int, mode: str, config: SpeedBenchConfig) -> dict[str, Any]:
    from ..measure import resolve_device, run_isolated

    try:
        if config.isolate and resolve_device(config.device).type == "cpu":
            return run_isolated(measure, name, seq_len, mode, config)
        return measure(name, seq_len, mode, config)
    except Exception as err:  # out of memory (or a killed worker) must not lose the other results
        import torch

        if not isinstance(err, (torch.OutOfMemoryError, MemoryError)) and "memory" not in str(err).lower() \
                and type(err).__name__ != "BrokenProcessPool":
            raise
        return {"model": name, "preset": config.preset, "seq_len": seq_len, "batch_size": config.batch_size,
                "mode": mode, "ms_per_step": None, "tokens_per_s": None, "peak_mem_bytes": None, "error": "out of memory"}


def run_speed_benchmark(config: SpeedBenchConfig) -> list[dict[str, Any]]:
    """Measure every (model, seq_len, mode); write JSON if asked; return the records."""
    from tqdm.auto import tqdm

    jobs = [(m, n, mode) for mode in config.mode for n in config.seq_lens for m in config.models]
    records = []
    with tqdm(jobs, desc="bench", unit="config") as bar:
        for name, seq_len, mode in bar:
            bar.set_postfix_str(f"{name} L={seq_len} {mode}")
            records.append(_measure_or_fail(name, seq_len, mode, config))
    if config.json:
        write_json(config.json, {"config": asdict(config), "results": records})
    return records


def format_speed_table(records: list[dict[str, Any]], baseline: str = "bert") -> str:
    """One row per record, with the speed-up and memory ratio against ``baseline`` at the same
    (seq_len, mode): baseline ms / model ms, so 2.0x means twice as fast."""
    base = {(r["seq_len"], r["mode"]): r for r in records if r["model"] == baseline and r.get("ms_per_step")}
    rows = []
    for r in records:
        ref = base.get((r["seq_len"], r["mode"]))
        ok = r.get("ms_per_step") is not None
        rows.append([
            r["model"], r["seq_len"], r["mode"],
            f"{r['ms_per_step']:.1f}" if ok else r.get("error", "-"),
            f"{r['tokens_per_s']:.0f}" if ok else "-",
            mib(r.get("peak_mem_bytes")),
            f"{ref['ms_per_step'] / r['ms_per_step']:.2f}x" if ok and ref else "-",
            f"{r['peak_mem_bytes'] / ref['peak_mem_bytes']:.2f}" if ok and ref and ref["peak_mem_bytes"] else "-",
        ])
    headers = ["model", "seq_len", "mode", "ms/step", "tokens/s", "peak MiB", f"speed-up vs {baseline}",
               f"mem vs {baseline}"]
    device = next((r["device"] for r in records if r.get("device")), "?")
    return f"device: {device}\n" + render_table(headers, rows)
