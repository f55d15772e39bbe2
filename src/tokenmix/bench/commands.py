"""``tokenmix bench ...`` commands (the table is collected by ``tokenmix.cli``). Runners import
their modules lazily so that building the parser stays torch-free."""

from __future__ import annotations

from typing import Any

GROUP_HELP = {"bench": "speed and memory benchmarks"}


def run_bench_speed(config: Any) -> None:
    from tokenmix.bench.speed import format_peer_table, format_speed_table, run_speed_benchmark

    records = run_speed_benchmark(config)
    print(format_speed_table(records, config.baseline))
    if config.compare:
        print("\n" + format_peer_table(records))
    for path in (config.json, config.markdown):
        if path:
            print(f"wrote {path}")


def run_bench_scaling(config: Any) -> None:
    from tokenmix.bench.scaling import run_scaling_benchmark, summarize

    print(summarize(run_scaling_benchmark(config)))
    print(f"wrote {config.out}/scaling.json, scaling.md, scaling.png, scaling.svg")


def run_bench_moe(config: Any) -> None:
    from tokenmix.bench.moe import format_moe_table, run_moe_benchmark

    print(format_moe_table(run_moe_benchmark(config)))


COMMANDS = (
    (("bench", "speed"), "ms/step, tokens/s and peak memory per model, length and mode",
     "Measure every model side by side in one run: median ms per step after warm-up, tokens/s, peak "
     "memory, dense TFLOP/s; prints a table, writes JSON and markdown. --compare hf adds Hugging Face "
     "transformers FNet and BERT (SDPA) of the same size.", "bench.speed:SpeedBenchConfig", run_bench_speed),
    (("bench", "scaling"), "time and memory against sequence length, with fitted growth exponents and plots",
     "Sweep sequence lengths (128 -> 8192 until out of memory or the time budget) and batch sizes; fit "
     "t ~ L^k and memory ~ L^k on log-log axes; write JSON, markdown and PNG/SVG plots.",
     "bench.scaling:ScalingBenchConfig", run_bench_scaling),
    (("bench", "moe"), "MoE layer vs a dense feed-forward of the same per-token compute",
     "Time one MoE feed-forward layer against a dense feed-forward of the same per-token compute, split "
     "into expert matmuls and routing + dispatch.", "bench.moe:MoEBenchConfig", run_bench_moe),
)
