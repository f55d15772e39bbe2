"""``tokenmix lra speed``: training speed and peak memory at 512-8192 tokens, like the FNet paper's
Table 5 (LRA Text configuration: 4 layers, 256 hidden, 4 heads, 1024 FF, byte vocabulary).

A step is the LRA training step: encoder + pooled LRA classifier head, cross-entropy, backward, AdamW.
Every (model, length) runs in a fresh process that is (a) given an address-space limit, so a model
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

import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tokenmix.io.files import write_json
from tokenmix.options import option

PERFORMER = "performer"


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
    seed: int = option(0, "seed of weights and inputs")
    out: str = option("runs/lra-speed", "output folder: speed.json, speed.md, speed.png")

    def __post_init__(self) -> None:
        self.models, self.seq_lens = tuple(self.models), tuple(self.seq_lens)
        for spec in self.models:
            parse_model_spec(spec)
        if not self.models or not self.seq_lens or min(self.seq_lens) < 1:
            raise ValueError("models and seq_lens must be non-empty and lengths positive")
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0 or self.time_budget <= 0 or self.max_memory_gb <= 0:
            raise ValueError("batch_size, repeats, time_budget and max_memory_gb must be positive, warmup >= 0")
        from tokenmix.lra.tasks import get_task

        get_task(self.task)


def parse_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"bert:attention_dropout=0.0"`` -> ("bert", {"attention_dropout": 0.0})."""
    from tokenmix.models.config import parse_overrides

    name, *overrides = spec.split(":")
    if name != PERFORMER:
        from tokenmix.models.registry import get_variant

        get_variant(name)
    return name, parse_overrides(overrides)


def build_model(spec: str, task_name: str, seq_len: int) -> Any:
    """The LRA classifier of ``spec`` at the task's official size, for sequences of ``seq_len``."""
    from tokenmix.lra.models import HeadConfig, LRAClassifier
    from tokenmix.lra.tasks import get_task, model_overrides
    from tokenmix.models.registry import make_config

    name, overrides = parse_model_spec(spec)
    task = get_task(task_name)
    preset, fields = model_overrides(task, "lra", task.pooling, {**overrides, "max_position_embeddings": seq_len})
    config = make_config("bert" if name == PERFORMER else name, preset, **fields)
    head = HeadConfig(task.name, task.num_classes, task.pooling)
    return LRAClassifier(config, head, performer_encoder(config) if name == PERFORMER else None)


def performer_encoder(config: Any) -> Any:
    """Our embeddings followed by performer-pytorch's FAVOR+ encoder of the same sizes."""
    try:
        from performer_pytorch import Performer
    except ImportError:
        raise ValueError("the performer peer needs performer-pytorch: pip install performer-pytorch "
                         "(or drop performer from --models)") from None
    from torch import nn

    from tokenmix.models.layers import Embeddings

    class PerformerEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = Embeddings(config)
            self.performer = Performer(dim=config.hidden_size, depth=config.num_layers, heads=config.num_heads,
                                       dim_head=config.hidden_size // config.num_heads,
                                       ff_mult=config.intermediate_size // config.hidden_size,
                                       ff_dropout=config.dropout, attn_dropout=config.attention_dropout)

        def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
            mask = None if attention_mask is None else attention_mask.bool()
            return self.performer(self.embeddings(input_ids, None), mask=mask)

    return PerformerEncoder()


def measure(spec: str, seq_len: int, config: LRASpeedConfig, report: Any = None) -> dict[str, Any]:
    """Time one configuration in this process; ``report(ms)`` is told every step's duration."""
    import torch

    from tokenmix.bench.measure import PeakMemory, device_name, median, resolve_device, synchronize
    from tokenmix.train.optim import adamw

    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)
    with PeakMemory(device) as memory:
        model = build_model(spec, config.task, seq_len).to(device)
        optimizer = adamw(model.parameters(), lr=1e-4)
        vocab = model.config.vocab_size
        batch = {"input_ids": torch.randint(2, vocab, (config.batch_size, seq_len), generator=generator).to(device),
                 "labels": torch.randint(0, model.head_config.num_classes, (config.batch_size,), generator=generator).to(device)}
        times = []
        for step in range(config.warmup + config.repeats):
            start = time.perf_counter()
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            synchronize(device)
            elapsed = (time.perf_counter() - start) * 1e3
            if report is not None:
                report(elapsed)
            if step >= config.warmup:
                times.append(elapsed)
    ms = median(times)
    return {"model": spec, "seq_len": seq_len, "batch_size": config.batch_size, "ms_per_step": round(ms, 2),
            "steps_per_s": round(1e3 / ms, 4), "peak_mem_bytes": int(memory.bytes), "params": model.num_parameters(),
            "device": device_name(device), "torch": torch.__version__}


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this worker when its parent dies, even by SIGKILL (``daemon=True``
    only covers a parent that exits normally), so no orphan keeps measuring and skews later runs."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: nothing to arm
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _worker(conn: Any, parent: int, spec: str, seq_len: int, config: LRASpeedConfig) -> None:
    """Child process: cap the address space, measure, send ("step", ms)* then ("ok", record) or ("error", text)."""
    import resource

    _die_with_parent(parent)
    import torch  # noqa: F401  (imported before the cap: the limit is on top of its mapped libraries)

    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = used + int(config.max_memory_gb * 2**30) + 2**29  # + 512 MiB for thread stacks and malloc arenas
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (OSError, ValueError):
        pass  # no /proc or no rlimit (macOS): measure without a cap
    try:
        conn.send(("ok", measure(spec, seq_len, config, lambda ms: conn.send(("step", ms)))))
    except MemoryError:
        conn.send(("oom", "MemoryError"))
    except RuntimeError as err:
        text = str(err)
        conn.send(("oom" if "alloc" in text.lower() or "out of memory" in text.lower() else "error", text[:500]))
    except Exception as err:  # reported in the record, never lost with the other results
        conn.send(("error", f"{type(err).__name__}: {err}"[:500]))
    finally:
        conn.close()


def run_limited(spec: str, seq_len: int, config: LRASpeedConfig) -> dict[str, Any]:
    """Measure in a fresh process under the memory cap and the time budget; failures become records."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_worker, args=(sender, os.getpid(), spec, seq_len, config), daemon=True)
    process.start()
    sender.close()
    deadline = time.monotonic() + config.time_budget
    steps: list[float] = []
    outcome: tuple[str, Any] = ("over budget", None)
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not receiver.poll(min(left, 1.0)):
                if not process.is_alive() and not receiver.poll(0):
                    outcome = ("oom", f"worker died (exit code {process.exitcode})")
                    break
                continue
            try:
                kind, payload = receiver.recv()
            except EOFError:
                outcome = ("oom", f"worker died (exit code {process.exitcode})")
                break
            if kind == "step":
                steps.append(payload)
                continue
            outcome = (kind, payload)
            break
    finally:
        if process.is_alive():
            process.kill()
        process.join()
    if outcome[0] == "ok":
        return outcome[1]
    if outcome[0] == "error":
        raise RuntimeError(f"{spec} at length {seq_len} failed: {outcome[1]}")
    error = "OOM" if outcome[0] == "oom" else "over budget"
    record = {"model": spec, "seq_len": seq_len, "batch_size": config.batch_size, "ms_per_step": None,
              "steps_per_s": None, "peak_mem_bytes": None, "error": error, "detail": outcome[1]}
    if steps:
        record["first_step_ms"] = round(steps[0], 1)
    if error == "over budget":
        record["detail"] = f"> {config.time_budget:.0f} s for warm-up + {config.repeats} steps" + (
            f" (first step {steps[0] / 1e3:.0f} s)" if steps else " (no step finished)")
    return record


def fit_exponent(records: list[dict[str, Any]], key: str) -> float | None:
    """Slope of log(value) on log(length) over the measured points (None with fewer than two)."""
    import numpy as np

    points = [(r["seq_len"], r[key]) for r in records if r.get(key)]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def run_speed_table(config: LRASpeedConfig) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from tokenmix.bench.measure import resolve_device

    available = [spec for spec in config.models if parse_model_spec(spec)[0] != PERFORMER or _has_performer()]
    notes = [f"{spec}: skipped, performer-pytorch is not installed (pip install performer-pytorch)"
             for spec in config.models if spec not in available]
    records: list[dict[str, Any]] = []
    failed: dict[str, dict[str, Any]] = {}
    isolate = resolve_device(config.device).type == "cpu"
    with tqdm(total=len(available) * len(config.seq_lens), desc="lra speed", unit="config") as bar:
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
    fits = {spec: {"memory_exponent": fit_exponent([r for r in records if r["model"] == spec], "peak_mem_bytes"),
                   "time_exponent": fit_exponent([r for r in records if r["model"] == spec], "ms_per_step")}
            for spec in available}
    result = {"config": asdict(config), "results": records, "fits": fits, "notes": notes}
    out = Path(config.out)
    write_json(out / "speed.json", result)
    markdown = format_markdown(result, config.baseline)
    from tokenmix.io.files import atomic_write

    atomic_write(out / "speed.md", lambda tmp: Path(tmp).write_text(markdown + "\n"))
    plot(result, out / "speed.png")
    return result


def _has_performer() -> bool:
    import importlib.util

    return importlib.util.find_spec("performer_pytorch") is not None


def format_markdown(result: dict[str, Any], baseline: str = "bert") -> str:
    """Paper Table 5 layout: steps/s (speed-up vs the baseline) and peak memory per model and length."""
    from tokenmix.reporting.tables import mib

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
    lines = [f"LRA {config['task']} configuration, batch {config['batch_size']}, training steps on {device} "
             f"(speed-up vs {baseline} in parentheses; budget {config['time_budget']:.0f} s and "
             f"{config['max_memory_gb']:g} GiB per configuration)", "", head, *rows, "", f"Fitted exponents: {fits}"]
    return "\n".join(lines + [f"Note: {n}" for n in result.get("notes", [])])


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tokenmix.io.files import atomic_write

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
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
    plt.close(figure)
