"""``tokenmix lra speed``: training speed and peak memory at 512-8192 tokens, like the FNet paper's
Table 5 (LRA Text configuration: 4 layers, 256 hidden, 4 heads, 1024 FF, byte vocabulary).

A step is the LRA training step: encoder + pooled LRA classifier head, cross-entropy, backward, AdamW.
On CPU every (model, length) runs in a fresh process (:func:`tokenmix.bench.measure.run_isolated`)
that is (a) given an address-space limit, so a model
that does not fit fails with an allocation error instead of swapping or waking the kernel's OOM
killer, and (b) killed when it runs past the per-configuration time budget. Both are recorded as
such ("OOM", "over budget") and the longer lengths of that model are skipped. The efficient-attention
peer is the Performer (FAVOR+) from ``performer-pytorch`` (optional: ``pip install performer-pytorch``),
with the same sizes, embeddings and head.

Outputs in ``--out``: ``speed.json`` (records + fitted exponents), ``speed.md`` (the table) and
``speed.png`` (log-log time and memory against length). The memory exponent is the slope of
log(peak memory) on log(length): ~1 for memory linear in the length, ~2 for quadratic attention.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from tokenmix.bench.measure import PeakMemory, fit_exponent, median, report_progress, resource_error, run_isolated
from tokenmix.devices import autocast, device_name, precision_name, resolve_device, resolve_precision, synchronize
from tokenmix.io.files import atomic_write, claim_outputs, write_json
from tokenmix.lra.configs import PERFORMER, LRASpeedConfig, parse_model_spec
from tokenmix.lra.tasks import get_lra_task, lra_model_config
from tokenmix.models.config import ModelConfig
from tokenmix.models.encoder import EncoderOutput
from tokenmix.models.factory import build_model
from tokenmix.models.heads import TokenMixForLRA
from tokenmix.models.layers import Embeddings
from tokenmix.progress import Progress
from tokenmix.reporting.tables import mib
from tokenmix.train.optim import adamw


class PerformerEncoder(nn.Module):
    """Our embeddings followed by performer-pytorch's FAVOR+ encoder of the same sizes."""

    def __init__(self, config: ModelConfig) -> None:
        try:
            from performer_pytorch import Performer  # noqa: PLC0415 (optional, the `lra` extra: only this peer needs it)
        except ImportError:
            raise ValueError("the performer peer needs performer-pytorch: pip install performer-pytorch "
                             "(or drop performer from --models)") from None
        super().__init__()
        self.embeddings = Embeddings(config)
        self.performer = Performer(dim=config.hidden_size, depth=config.num_layers, heads=config.num_heads,
                                   dim_head=config.hidden_size // config.num_heads,
                                   ff_mult=config.intermediate_size // config.hidden_size,
                                   ff_dropout=config.dropout, attn_dropout=config.attention_dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> EncoderOutput:
        mask = None if attention_mask is None else attention_mask.bool()
        hidden = self.performer(self.embeddings(input_ids, None), mask=mask)
        return EncoderOutput(hidden, hidden[:, 0])


def build_classifier(spec: str, task_name: str, seq_len: int) -> TokenMixForLRA:
    """The LRA classifier of ``spec`` at the task's official size, for sequences of ``seq_len`` (one
    tower even for retrieval: the encoder's speed is what is measured)."""
    name, overrides = parse_model_spec(spec)
    task = get_lra_task(task_name)
    config = lra_model_config("bert" if name == PERFORMER else name, task, "lra", task.pooling,
                              {"head": "lra_classification", **overrides, "max_position_embeddings": seq_len})
    model = build_model(config)
    assert isinstance(model, TokenMixForLRA)
    if name == PERFORMER:
        model.encoder = PerformerEncoder(config)  # type: ignore[assignment]  # a peer with the encoder's interface
    return model


def measure(spec: str, seq_len: int, config: LRASpeedConfig) -> dict[str, Any]:
    """Time one configuration in this process (every step's duration goes to :func:`report_progress`)."""
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)
    with PeakMemory(device) as memory:
        model = build_classifier(spec, config.task, seq_len).to(device)
        optimizer = adamw(model.parameters(), lr=1e-4)
        vocab = model.config.vocab_size
        batch = {"input_ids": torch.randint(2, vocab, (config.batch_size, seq_len), generator=generator).to(device),
                 "labels": torch.randint(0, model.config.num_labels, (config.batch_size,), generator=generator).to(device)}
        times = []
        for step in range(config.warmup + config.repeats):
            start = time.perf_counter()
            with autocast(config.precision, device):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            synchronize(device)
            elapsed = (time.perf_counter() - start) * 1e3
            report_progress(elapsed)
            if step >= config.warmup:
                times.append(elapsed)
    ms = median(times)
    return {"model": spec, "seq_len": seq_len, "batch_size": config.batch_size, "ms_per_step": round(ms, 2),
            "steps_per_s": round(1e3 / ms, 4), "peak_mem_bytes": int(memory.bytes), "params": model.num_parameters(),
            "device": device_name(device), "precision": precision_name(resolve_precision(config.precision, device)), "torch": torch.__version__}


def run_limited(spec: str, seq_len: int, config: LRASpeedConfig) -> dict[str, Any]:
    """:func:`measure` in a fresh process under the memory cap and the time budget; running out of
    either becomes a record ("OOM", "over budget"), any other failure an error."""
    steps: list[float] = []
    try:
        return run_isolated(measure, spec, seq_len, config, timeout=config.time_budget, on_progress=steps.append,
                            memory_limit=int(config.max_memory_gb * 2**30) + 2**29)  # + 512 MiB: thread stacks, malloc arenas
    except Exception as err:
        problem = resource_error(err)
        if problem is None:
            raise RuntimeError(f"{spec} at length {seq_len} failed: {type(err).__name__}: {err}"[:500]) from err
        detail = str(err)[:500] or type(err).__name__
    record = {"model": spec, "seq_len": seq_len, "batch_size": config.batch_size, "ms_per_step": None,
              "steps_per_s": None, "peak_mem_bytes": None}
    if problem == "out of memory":
        record.update(error="OOM", detail=detail)
    else:
        record.update(error="over budget", detail=f"> {config.time_budget:.0f} s for warm-up + {config.repeats} steps" + (
            f" (first step {steps[0] / 1e3:.0f} s)" if steps else " (no step finished)"))
    if steps:
        record["first_step_ms"] = round(steps[0], 1)
    return record


def exponent(records: list[dict[str, Any]], key: str) -> float | None:
    """:func:`~tokenmix.bench.measure.fit_exponent` of ``key`` over the records that have it."""
    ok = [r for r in records if r.get(key)]
    return fit_exponent([r["seq_len"] for r in ok], [r[key] for r in ok])


def run_speed_table(config: LRASpeedConfig) -> dict[str, Any]:
    claim_outputs(config)  # an existing output is refused unless config.overwrite, before any work
    available = [spec for spec in config.models if parse_model_spec(spec)[0] != PERFORMER or _has_performer()]
    notes = [f"{spec}: skipped, performer-pytorch is not installed (pip install performer-pytorch)"
             for spec in config.models if spec not in available]
    records: list[dict[str, Any]] = []
    failed: dict[str, dict[str, Any]] = {}
    isolate = resolve_device(config.device).type == "cpu"
    with Progress(total=len(available) * len(config.seq_lens), desc="lra speed", unit="config") as bar:
        for seq_len in sorted(config.seq_lens):
            for spec in available:
                bar.set_postfix_str(f"{spec} L={seq_len}")
                if spec in failed:  # a longer sequence cannot fit where a shorter one did not
                    records.append({**failed[spec], "seq_len": seq_len, "detail": f"skipped after L={failed[spec]['seq_len']}",
                                    "first_step_ms": None})
                else:
                    record = run_limited(spec, seq_len, config) if isolate else measure(spec, seq_len, config)
                    records.append(record)
                    if record.get("error"):
                        failed[spec] = record
                write_json(Path(config.out) / "speed.json", {"config": asdict(config), "results": records, "partial": True})
                bar.update(1)
    fits = {spec: {"memory_exponent": exponent([r for r in records if r["model"] == spec], "peak_mem_bytes"),
                   "time_exponent": exponent([r for r in records if r["model"] == spec], "ms_per_step")}
            for spec in available}
    result = {"config": asdict(config), "results": records, "fits": fits, "notes": notes}
    out = Path(config.out)
    write_json(out / "speed.json", result)
    markdown = format_markdown(result, config.baseline)
    atomic_write(out / "speed.md", lambda tmp: Path(tmp).write_text(markdown + "\n"))
    plot(result, out / "speed.png")
    return result


def _has_performer() -> bool:
    return importlib.util.find_spec("performer_pytorch") is not None


def format_markdown(result: dict[str, Any], baseline: str = "bert") -> str:
    """Paper Table 5 layout: steps/s (speed-up vs the baseline) and peak memory per model and length."""
    records = result["results"]
    lengths = sorted({r["seq_len"] for r in records})
    models = list(dict.fromkeys(r["model"] for r in records))
    cell = {(r["model"], r["seq_len"]): r for r in records}
    head = "| | " + " | ".join(str(n) for n in lengths) + " |\n|---|" + "---|" * len(lengths)
    rows = []
    for kind in ("steps/s", "peak MiB"):
        for model in models:
            values = []
            for n in lengths:
                r, base = cell.get((model, n), {}), cell.get((baseline, n), {})
                if r.get("error"):
                    values.append(r["error"])
                elif kind == "peak MiB":
                    values.append(mib(r.get("peak_mem_bytes")))
                elif r:
                    ratio = f" ({base['ms_per_step'] / r['ms_per_step']:.1f}x)" if base.get("ms_per_step") and model != baseline else ""
                    values.append(f"{r['steps_per_s']:.3g}{ratio}")
                else:
                    values.append("-")
            rows.append(f"| {model} {kind} | " + " | ".join(values) + " |")
    config = result["config"]
    fits = "; ".join(f"{m}: memory ~ L^{f['memory_exponent']:.2f}, time ~ L^{f['time_exponent']:.2f}"
                     for m, f in result["fits"].items() if f["memory_exponent"] is not None and f["time_exponent"] is not None)
    device = next((r["device"] for r in records if r.get("device")), "?")
    precision = next((r["precision"] for r in records if r.get("precision")), config.get("precision", "fp32"))
    lines = [f"LRA {config['task']} configuration, batch {config['batch_size']}, {precision} training steps on {device} "
             f"(speed-up vs {baseline} in parentheses; budget {config['time_budget']:.0f} s and "
             f"{config['max_memory_gb']:g} GiB per configuration)", "", head, *rows, "", f"Fitted exponents: {fits}"]
    return "\n".join(lines + [f"Note: {n}" for n in result.get("notes", [])])


def plot(result: dict[str, Any], path: Path) -> None:
    figure = Figure(figsize=(11, 4.2))  # no pyplot: no global state, no GUI backend
    axes = figure.subplots(1, 2)
    for model, fit in result["fits"].items():
        ok = [r for r in result["results"] if r["model"] == model and r.get("ms_per_step")]
        if not ok:
            continue
        lengths = [r["seq_len"] for r in ok]
        axes[0].plot(lengths, [r["ms_per_step"] / 1e3 for r in ok], marker="o", label=model)
        exponent = fit["memory_exponent"]
        label = model if exponent is None else f"{model} (slope {exponent:.2f})"
        axes[1].plot(lengths, [r["peak_mem_bytes"] / 2**30 for r in ok], marker="o", label=label)
    for axis, title in zip(axes, ("seconds per training step", "peak memory (GiB)")):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("sequence length")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle(f"LRA {result['config']['task']} config, batch {result['config']['batch_size']}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
