"""How time and memory grow with sequence length: ``tokenmix bench scaling``.

Every (model, batch size) is measured at increasing lengths (128 -> 8192 by default) with the speed
benchmark's step (:func:`.speed.measure_or_fail`: a fresh process per configuration on CPU, with a
memory cap and a time limit). A configuration that runs out of memory or time is recorded and the
longer lengths of that (model, batch size) are skipped, as are lengths whose predicted run time (the
growth fitted so far, quadratic before two points exist) exceeds the budget. Growth exponents come
from least squares on log-log axes: t ~ L^k over all measured lengths and over the three longest
(the asymptotic regime: at short lengths fixed costs such as the optimizer step flatten the curve).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tokenmix.bench.speed import MODES, SpeedBenchConfig
from tokenmix.io.files import atomic_write, write_json
from tokenmix.reporting.tables import mib, render_markdown, render_table


@dataclass
class ScalingBenchConfig:
    models: tuple[str, ...] = field(default=("fnet", "bert"), metadata={"help": "registered model names"})
    preset: str = field(default="mini", metadata={"help": "size preset"})
    seq_lens: tuple[int, ...] = field(default=(128, 256, 512, 1024, 2048, 4096, 8192), metadata={"help": "sequence lengths, ascending"})
    batch_sizes: tuple[int, ...] = field(default=(8,), metadata={"help": "batch sizes"})
    mode: str = field(default="train", metadata={"help": "what a step is: train, pretrain or inference"})
    warmup: int = field(default=1, metadata={"help": "untimed steps before measuring"})
    repeats: int = field(default=3, metadata={"help": "timed steps (the median is reported)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch (0 = torch's default); 1 gives stable timings on a shared machine"})
    amp: str = field(default="none", metadata={"help": "autocast dtype: none, bf16 or fp16"})
    compile: bool = field(default=False, metadata={"help": "torch.compile every model"})
    fourier_impl: str = field(default="auto", metadata={"help": "Fourier transform: auto (measured), fft or matmul"})
    time_budget_s: float = field(default=300.0, metadata={"help": "seconds allowed per configuration (CPU: enforced; all devices: longer lengths predicted to exceed it are skipped)"})
    memory_limit_gb: float = field(default=8.0, metadata={"help": "CPU: address-space cap per configuration's process in GB (0 = none)"})
    seed: int = field(default=0, metadata={"help": "random seed for weights and inputs"})
    out: str = field(default="runs/bench-scaling", metadata={"help": "folder for scaling.json, scaling.md, scaling.png and scaling.svg"})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode}; choose from {', '.join(MODES)}")
        if list(self.seq_lens) != sorted(set(self.seq_lens)):
            raise ValueError(f"seq_lens must be distinct and ascending, got {','.join(map(str, self.seq_lens))}")
        if min(self.batch_sizes, default=0) < 1:
            raise ValueError("batch_sizes must be positive integers")
        if not self.time_budget_s > 0:
            raise ValueError(f"time_budget_s must be > 0, got {self.time_budget_s}")
        self.speed_config(self.batch_sizes[0])  # validates models, lengths, amp, repeats

    def speed_config(self, batch_size: int) -> SpeedBenchConfig:
        return SpeedBenchConfig(models=self.models, preset=self.preset, seq_lens=self.seq_lens, batch_size=batch_size,
                                mode=(self.mode,), warmup=self.warmup, repeats=self.repeats, device=self.device, threads=self.threads,
                                amp=self.amp, compile=self.compile, fourier_impl=self.fourier_impl,
                                memory_limit_gb=self.memory_limit_gb, time_budget_s=self.time_budget_s, seed=self.seed)


def fit_exponent(lengths: list[float], values: list[float]) -> float | None:
    """Least-squares slope of log(value) against log(length): value ~ length^slope."""
    import numpy as np

    if len(lengths) < 2:
        return None
    slope, _ = np.polyfit(np.log(lengths), np.log(values), 1)
    return round(float(slope), 3)


def _points(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    ok = [r for r in records if r.get(key)]
    return [r["seq_len"] for r in ok], [r[key] for r in ok]


def fit_growth(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exponents of time and memory per (model, batch size), over all lengths and the 3 longest."""
    fits = []
    for model, batch in dict.fromkeys((r["model"], r["batch_size"]) for r in records):
        group = [r for r in records if r["model"] == model and r["batch_size"] == batch]
        fit = {"model": model, "batch_size": batch}
        for key, name in (("ms_per_step", "time"), ("peak_mem_bytes", "memory")):
            lengths, values = _points(group, key)
            fit[f"{name}_exponent"] = fit_exponent(lengths, values)
            fit[f"{name}_exponent_longest3"] = fit_exponent(lengths[-3:], values[-3:])
        fit["lengths"] = _points(group, "ms_per_step")[0]
        fit["stopped"] = next((f"{r['error']} at {r['seq_len']}" for r in group if r.get("error")), None)
        fits.append(fit)
    return fits


def _predicted_seconds(done: list[dict[str, Any]], seq_len: int, steps: int) -> float:
    lengths, times = _points(done, "ms_per_step")
    exponent = fit_exponent(lengths[-3:], times[-3:]) if len(lengths) > 1 else 2.0
    return times[-1] / 1e3 * steps * (seq_len / lengths[-1]) ** max(exponent or 2.0, 1.0)


def run_scaling_benchmark(config: ScalingBenchConfig) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from tokenmix.bench.measure import resolve_device
    from tokenmix.bench.speed import measure_or_fail
    from tokenmix.io.files import ensure_writable

    resolve_device(config.device)
    ensure_writable(config.out, directory=True, flag="--out")
    steps = config.warmup + config.repeats + 1  # + the FLOP-counting step
    records = []
    jobs = [(m, b) for b in config.batch_sizes for m in config.models]
    with tqdm(total=len(jobs) * len(config.seq_lens), desc="scaling", unit="config") as bar:
        for model, batch in jobs:
            speed_config, done, stop = config.speed_config(batch), [], None
            for seq_len in config.seq_lens:
                bar.set_postfix_str(f"{model} b={batch} L={seq_len}")
                if stop is None and done and _predicted_seconds(done, seq_len, steps) > config.time_budget_s:
                    stop = f"skipped: predicted over the {config.time_budget_s:g} s budget"
                if stop is not None:
                    record = {"model": model, "seq_len": seq_len, "batch_size": batch, "mode": config.mode,
                              "ms_per_step": None, "peak_mem_bytes": None, "error": stop}
                else:
                    record = measure_or_fail(model, seq_len, config.mode, speed_config)
                    if record.get("error"):
                        stop = f"skipped after {record['error']} at {seq_len}"
                    else:
                        done.append(record)
                records.append(record)
                bar.update()
    fits = fit_growth(records)
    out = Path(config.out)
    result = {"config": asdict(config), "results": records, "fits": fits}
    write_json(out / "scaling.json", result)
    atomic_write(out / "scaling.md", lambda tmp: Path(tmp).write_text(format_scaling(records, fits, markdown=True) + "\n"))
    plot_scaling(records, fits, config, out)
    return result


def _exp(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_scaling(records: list[dict[str, Any]], fits: list[dict[str, Any]], markdown: bool = False) -> str:
    render = render_markdown if markdown else render_table
    rows = [[r["model"], r["batch_size"], r["seq_len"], f"{r['ms_per_step']:.1f}" if r.get("ms_per_step") else r["error"],
             mib(r.get("peak_mem_bytes"))] for r in records]
    table = render(["model", "batch", "seq_len", "ms/step", "peak MiB"], rows)
    fit_rows = [[f["model"], f["batch_size"], _exp(f["time_exponent"]), _exp(f["time_exponent_longest3"]),
                 _exp(f["memory_exponent"]), _exp(f["memory_exponent_longest3"]),
                 f"{f['lengths'][0]}-{f['lengths'][-1]}" if f["lengths"] else "-", f["stopped"] or "-"] for f in fits]
    fit_table = render(["model", "batch", "time ~ L^k", "k (3 longest)", "memory ~ L^k", "k (3 longest)",
                        "lengths", "stopped"], fit_rows)
    device = next((r["device"] for r in records if r.get("device")), "?")
    return f"{'Device' if markdown else 'device'}: {device}\n\n{table}\n\n{fit_table}"


def plot_scaling(records: list[dict[str, Any]], fits: list[dict[str, Any]], config: ScalingBenchConfig, out: Path) -> None:
    """scaling.png and scaling.svg: time per step and peak memory against length, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = next((r["device"] for r in records if r.get("device")), "?")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    for fit in fits:
        group = [r for r in records if r["model"] == fit["model"] and r["batch_size"] == fit["batch_size"]]
        label = fit["model"] + (f" (batch {fit['batch_size']})" if len(config.batch_sizes) > 1 else "")
        for ax, key, scale, name in ((axes[0], "ms_per_step", 1.0, "time"), (axes[1], "peak_mem_bytes", 2**-20, "memory")):
            lengths, values = _points(group, key)
            if lengths:
                k = fit[f"{name}_exponent_longest3"]
                ax.plot(lengths, [v * scale for v in values], marker="o",
                        label=f"{label}: $\\propto L^{{{k:.2f}}}$" if k is not None else label)
    lengths = list(config.seq_lens)
    for ax, ylabel, title in ((axes[0], "ms per step", f"time per {config.mode} step"),
                              (axes[1], "peak memory (MiB)", "peak memory")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="growth over the 3 longest lengths", fontsize="small")
    batches = ",".join(map(str, config.batch_sizes))
    fig.suptitle(f"tokenmix {config.preset}, batch {batches}, {device}")
    for suffix in ("png", "svg"):
        atomic_write(out / f"scaling.{suffix}", lambda tmp: fig.savefig(tmp, format=suffix, dpi=150))
    plt.close(fig)


def summarize(result: dict[str, Any]) -> str:
    return format_scaling(result["results"], result["fits"])


