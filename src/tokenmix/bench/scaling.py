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

from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from tokenmix.bench import speed
from tokenmix.bench.configs import ScalingBenchConfig
from tokenmix.bench.measure import fit_exponent
from tokenmix.devices import resolve_device
from tokenmix.io.files import atomic_write, claim_outputs, write_json
from tokenmix.progress import Progress
from tokenmix.reporting.tables import mib, render_table


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
    claim_outputs(config)  # an existing output is refused unless config.overwrite, before any work
    resolve_device(config.device)
    steps = config.warmup + config.repeats + 1  # + the FLOP-counting step
    records = []
    jobs = [(m, b) for b in config.batch_sizes for m in config.models]
    with Progress(total=len(jobs) * len(config.seq_lens), desc="scaling", unit="config") as bar:
        for model, batch in jobs:
            speed_config, stop = config.speed_config(batch), None
            done: list[dict[str, Any]] = []
            for seq_len in config.seq_lens:
                bar.set_postfix_str(f"{model} b={batch} L={seq_len}")
                if stop is None and done and _predicted_seconds(done, seq_len, steps) > config.time_budget_s:
                    stop = f"skipped: predicted over the {config.time_budget_s:g} s budget"
                if stop is not None:
                    record = {"model": model, "seq_len": seq_len, "batch_size": batch, "mode": config.mode,
                              "ms_per_step": None, "peak_mem_bytes": None, "error": stop}
                else:
                    record = speed.measure_or_fail(model, seq_len, config.mode, config.precision, speed_config)
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
    rows = [[r["model"], r["batch_size"], r["seq_len"], f"{r['ms_per_step']:.1f}" if r.get("ms_per_step") else r["error"],
             mib(r.get("peak_mem_bytes"))] for r in records]
    table = render_table(["model", "batch", "seq_len", "ms/step", "peak MiB"], rows, markdown)
    fit_rows = [[f["model"], f["batch_size"], _exp(f["time_exponent"]), _exp(f["time_exponent_longest3"]),
                 _exp(f["memory_exponent"]), _exp(f["memory_exponent_longest3"]),
                 f"{f['lengths'][0]}-{f['lengths'][-1]}" if f["lengths"] else "-", f["stopped"] or "-"] for f in fits]
    fit_table = render_table(["model", "batch", "time ~ L^k", "k (3 longest)", "memory ~ L^k", "k (3 longest)",
                              "lengths", "stopped"], fit_rows, markdown)
    device = next((r["device"] for r in records if r.get("device")), "?")
    return f"{'Device' if markdown else 'device'}: {device}\n\n{table}\n\n{fit_table}"


def plot_scaling(records: list[dict[str, Any]], fits: list[dict[str, Any]], config: ScalingBenchConfig, out: Path) -> None:
    """scaling.png and scaling.svg: time per step and peak memory against length, log-log."""
    # matplotlib only here, in the one step that draws: it is slow to import (~0.3 s) and pyplot must
    # come after the backend is chosen
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

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
        atomic_write(out / f"scaling.{suffix}", partial(fig.savefig, format=suffix, dpi=150))
    plt.close(fig)


def summarize(result: dict[str, Any]) -> str:
    return format_scaling(result["results"], result["fits"])


