"""Speed and memory benchmark: every model measured side by side in one run.

Modes (what one "step" is):

* ``train``: fine-tuning step: encoder + pooled classifier, cross-entropy, backward, AdamW step
  (the quantity of the FNet paper's LRA speed table).
* ``pretrain``: MLM (15% of positions, logits at those positions only) + NSP loss, backward, AdamW.
* ``inference``: encoder forward under ``torch.inference_mode``.

Each configuration gets warm-up steps, then ``repeats`` timed steps; we report the median. Peak memory
on CPU is only measurable per process, so on CPU every configuration runs in a fresh process.
``--rounds N`` measures the whole list N times, interleaved, and pools the timings: on a shared
machine, background load then affects every model alike, which keeps same-run ratios honest.
``--compare hf`` adds Hugging Face transformers models of the same size (:mod:`.peers`).
``--precision fp32,bf16`` measures every configuration in each precision, in the same run, and adds
the fp32 ÷ bf16 table (:func:`format_precision_table`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tokenmix.bench.configs import MODES, PEERS, SpeedBenchConfig
from tokenmix.bench.flops import count_matmul_flops, matmul_precision, peak_tflops
from tokenmix.bench.measure import PeakMemory, enable_tf32, median, resource_error, run_isolated, time_steps
from tokenmix.bench.peers import build_peer, require_transformers
from tokenmix.devices import device_name, precision_name, resolve_device, resolve_precision
from tokenmix.io.files import atomic_write, claim_outputs, write_json
from tokenmix.models.factory import build_model
from tokenmix.models.mixing.autotune import choices
from tokenmix.models.registry import make_config
from tokenmix.progress import Progress
from tokenmix.reporting.tables import mib, render_table
from tokenmix.train.optim import adamw


def make_batch(mode: str, vocab_size: int, batch_size: int, seq_len: int, device: Any, generator: Any) -> dict[str, Any]:
    """Random token ids (no padding) plus the labels the mode's head needs."""

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


def build(name: str, mode: str, seq_len: int, config: SpeedBenchConfig, device: Any, generator: Any
          ) -> tuple[Any, Callable[[Any], Any]]:
    """(model on ``device``, forward): ``forward(module)`` runs ``module`` (the model or its compiled
    form) on one fixed batch and returns the output (with ``.loss`` in the training modes)."""
    variant = PEERS[name][0] if name in PEERS else name
    model_config = make_config(variant, config.preset, head=MODES[mode], fourier_impl=config.fourier_impl,
                               max_position_embeddings=max(seq_len, 512))
    batch = make_batch(mode, model_config.vocab_size, config.batch_size, seq_len, device, generator)
    if name in PEERS:
        model, forward = build_peer(name, model_config, mode, batch)
    else:
        model, forward = build_model(model_config), lambda module: module(**batch)
    return model.to(device), forward


def make_step(mode: str, model: Any, module: Any, forward: Callable[[Any], Any], amp: Any, device: Any
              ) -> tuple[Callable[[], None], Any]:
    """(one benchmark step, its optimizer or None); ``module`` is ``model`` or its compiled form,
    ``amp`` the autocast dtype (None = float32)."""
    autocast = torch.autocast(device.type, dtype=amp, enabled=amp is not None)
    if mode == "inference":
        model.eval()

        def infer() -> None:
            with torch.inference_mode(), autocast:
                forward(module)

        return infer, None
    model.train()
    optimizer = adamw(model.parameters(), lr=1e-4)  # fused kernel where torch has one (CUDA, CPU)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)

    def train() -> None:
        with autocast:
            loss = forward(module).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return train, optimizer


def measure(name: str, seq_len: int, mode: str, precision: str, config: SpeedBenchConfig) -> dict[str, Any]:
    """Time one (model, length, mode, precision) configuration in this process."""
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    tf32 = config.tf32 and enable_tf32(device)
    amp = resolve_precision(precision, device)
    generator = torch.Generator().manual_seed(config.seed)
    with PeakMemory(device) as memory:
        model, forward = build(name, mode, seq_len, config, device, generator)
        module = torch.compile(model) if config.compile else model
        step, optimizer = make_step(mode, model, module, forward, amp, device)
        times = time_steps(step, device, config.warmup, config.repeats)
    # One more step of the eager model, counting the FLOPs of its matrix products.
    flops = count_matmul_flops(make_step(mode, model, model, forward, amp, device)[0])
    ms, name_of_device = median(times), device_name(device)
    peak = peak_tflops(name_of_device, matmul_precision(precision_name(amp), tf32)) if device.type == "cuda" else None
    fourier = sorted({impl for key, impl in choices().items() if key[2] == seq_len})
    return {
        "model": name, "preset": config.preset, "seq_len": seq_len, "batch_size": config.batch_size, "mode": mode,
        "ms_per_step": round(ms, 3), "ms_min": round(min(times), 3),
        "tokens_per_s": round(config.batch_size * seq_len / (ms / 1e3), 1),
        "peak_mem_bytes": int(memory.bytes), "device": name_of_device,
        "params": sum(p.numel() for p in model.parameters()),
        "dense_gflop_per_step": round(flops / 1e9, 3), "dense_tflops": round(flops / ms / 1e9, 4),
        "peak_tflops": peak, "dense_utilization": round(flops / ms / 1e9 / peak, 4) if peak else None,
        "precision": precision_name(amp), "tf32": tf32, "compile": config.compile,
        "fused_adamw": bool(optimizer.defaults.get("fused")) if optimizer else None,
        "fourier_impl": None if name in PEERS else f"{config.fourier_impl}: {','.join(fourier)}" if fourier else config.fourier_impl,
        "torch": torch.__version__, "warmup": config.warmup, "repeats": config.repeats,
        "times_ms": [round(t, 3) for t in times],
    }


def measure_or_fail(name: str, seq_len: int, mode: str, precision: str, config: SpeedBenchConfig) -> dict[str, Any]:
    """:func:`measure`, in a fresh process on CPU; a configuration that runs out of memory or time
    becomes a record with ``error`` so that the other results are kept."""
    try:
        if config.isolate and resolve_device(config.device).type == "cpu":
            return run_isolated(measure, name, seq_len, mode, precision, config, timeout=config.time_budget_s or None,
                                memory_limit=int(config.memory_limit_gb * 2**30) or None)
        return measure(name, seq_len, mode, precision, config)
    except Exception as err:
        problem = resource_error(err)
        if problem is None:
            raise
        return {"model": name, "preset": config.preset, "seq_len": seq_len, "batch_size": config.batch_size,
                "mode": mode, "precision": precision_name(resolve_precision(precision, resolve_device(config.device))),
                "ms_per_step": None, "tokens_per_s": None, "peak_mem_bytes": None, "error": problem}


def pool_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from the same configuration measured in several rounds: the median over every
    timed step, the largest peak memory; any failed round fails the configuration."""
    failed = next((r for r in rounds if r.get("error")), None)
    if failed or len(rounds) == 1:
        return failed or rounds[0]
    times = [t for r in rounds for t in r["times_ms"]]
    ms = median(times)
    record = {**rounds[0], "ms_per_step": round(ms, 3), "ms_min": round(min(times), 3), "times_ms": times,
              "tokens_per_s": round(rounds[0]["batch_size"] * rounds[0]["seq_len"] / (ms / 1e3), 1),
              "peak_mem_bytes": max(r["peak_mem_bytes"] for r in rounds), "rounds": len(rounds)}
    if record["dense_gflop_per_step"]:
        record["dense_tflops"] = round(record["dense_gflop_per_step"] / ms, 4)
        if record["peak_tflops"]:
            record["dense_utilization"] = round(record["dense_tflops"] / record["peak_tflops"], 4)
    return record


def run_speed_benchmark(config: SpeedBenchConfig) -> list[dict[str, Any]]:
    """Measure every (model, seq_len, mode) ``rounds`` times; write JSON/markdown if asked; return
    the records. Output paths and the device are checked before anything is measured."""
    claim_outputs(config)  # an existing output is refused unless config.overwrite, before any work
    device = resolve_device(config.device)
    for precision in config.precision:
        resolve_precision(precision, device)  # fp16 on a CPU fails here, before any measurement
    if config.compare:
        require_transformers()
    jobs = [(m, n, mode, p) for mode in config.mode for n in config.seq_lens for m in config.subjects for p in config.precision]
    results: dict[tuple, list[dict[str, Any]]] = {job: [] for job in jobs}
    with Progress(total=len(jobs) * config.rounds, desc="bench", unit="config") as bar:
        for round_index in range(config.rounds):
            for job in jobs:
                bar.set_postfix_str(f"{job[0]} L={job[1]} {job[2]} {job[3]}" + (f" round {round_index + 1}" if config.rounds > 1 else ""))
                if not any(r.get("error") for r in results[job]):  # a failed configuration is not retried
                    results[job].append(measure_or_fail(*job, config))
                bar.update()
    records = [pool_rounds(results[job]) for job in jobs]
    if config.json:
        write_json(config.json, {"config": asdict(config), "results": records})
    if config.markdown:
        text = format_speed_table(records, config.baseline, markdown=True)
        if config.compare:
            text += "\n\n" + format_peer_table(records, markdown=True)
        if len(config.precision) > 1:
            text += "\n\n" + format_precision_table(records, markdown=True)
        atomic_write(config.markdown, lambda tmp: Path(tmp).write_text(text + "\n"))
    return records


def _key(r: dict[str, Any]) -> tuple[int, str, str]:
    """What two records must share to be compared: length, mode and precision."""
    return r["seq_len"], r["mode"], r["precision"]


def _speedup(ref: dict[str, Any] | None, r: dict[str, Any]) -> str:
    if ref is None or not ref.get("ms_per_step") or not r.get("ms_per_step"):
        return "-"
    return f"{ref['ms_per_step'] / r['ms_per_step']:.2f}x"


def _tflops(r: dict[str, Any]) -> str:
    if r.get("dense_tflops") is None:
        return "-"
    peak = f" / {r['peak_tflops']:g} ({r['dense_utilization']:.0%})" if r.get("peak_tflops") else " / n/a"
    return f"{r['dense_tflops']:.3g}{peak}"


def format_speed_table(records: list[dict[str, Any]], baseline: str = "bert", markdown: bool = False) -> str:
    """One row per record, with the speed-up and memory ratio against ``baseline`` at the same
    (seq_len, mode, precision): baseline ms / model ms, so 2.0x means twice as fast. Achieved dense
    TFLOP/s against the device's peak (n/a on CPU and unknown devices)."""
    base = {_key(r): r for r in records if r["model"] == baseline and r.get("ms_per_step")}
    rows = []
    for r in records:
        ref = base.get(_key(r))
        ok = r.get("ms_per_step") is not None
        rows.append([
            r["model"], r["seq_len"], r["mode"], r["precision"],
            f"{r['ms_per_step']:.1f}" if ok else r.get("error", "-"),
            f"{r['tokens_per_s']:.0f}" if ok else "-",
            mib(r.get("peak_mem_bytes")), _speedup(ref, r),
            f"{r['peak_mem_bytes'] / ref['peak_mem_bytes']:.2f}" if ok and ref and ref["peak_mem_bytes"] else "-",
            _tflops(r),
        ])
    headers = ["model", "seq_len", "mode", "precision", "ms/step", "tokens/s", "peak MiB", f"speed-up vs {baseline}",
               f"mem vs {baseline}", "dense TFLOP/s / peak"]
    device = next((r["device"] for r in records if r.get("device")), "?")
    heading = f"Device: {device}\n\n" if markdown else f"device: {device}\n"
    return heading + render_table(headers, rows, markdown)


def format_peer_table(records: list[dict[str, Any]], markdown: bool = False) -> str:
    """Our models against every peer at the same (mode, seq_len, precision): peer ms / our ms (2.00x = we are
    twice as fast)."""
    peers = [p for p in PEERS if any(r["model"] == p for r in records)]
    by_key = {(r["model"], *_key(r)): r for r in records}
    rows = [[r["mode"], r["seq_len"], r["model"], r["precision"],
             f"{r['ms_per_step']:.1f}" if r.get("ms_per_step") else r.get("error", "-"),
             *(_speedup(by_key.get((p, *_key(r))), r) for p in peers)]
            for r in records if r["model"] not in PEERS]
    headers = ["mode", "seq_len", "model", "precision", "ms/step", *(f"{p} ÷ model" for p in peers)]
    return render_table(headers, rows, markdown)


def format_precision_table(records: list[dict[str, Any]], markdown: bool = False) -> str:
    """One row per (model, seq_len, mode) measured in fp32 and in a lower precision: both step times
    and fp32 ms / low-precision ms (1.70x = the bf16 step takes 1/1.7 of the fp32 one)."""
    by_key = {(r["model"], *_key(r)): r for r in records}
    rows = [[r["model"], r["seq_len"], r["mode"], f"{r['ms_per_step']:.1f}", low,
             f"{low_r['ms_per_step']:.1f}" if low_r.get("ms_per_step") else low_r.get("error", "-"), _speedup(r, low_r)]
            for r in records if r["precision"] == "fp32" and r.get("ms_per_step")
            for low in ("bf16", "fp16") if (low_r := by_key.get((r["model"], r["seq_len"], r["mode"], low)))]
    headers = ["model", "seq_len", "mode", "fp32 ms/step", "precision", "ms/step", "fp32 ÷ precision"]
    return render_table(headers, rows, markdown)
