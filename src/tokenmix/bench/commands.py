"""``tokenmix bench ...`` commands (the table is collected by ``tokenmix.cli``). Runners import
their modules lazily so that building the parser stays torch-free."""

from __future__ import annotations

from typing import Any

GROUP_HELP = {"bench": "speed and memory benchmarks"}


def run_bench_speed(config: Any) -> None:
    from .speed import format_speed_table, run_speed_benchmark

    print(format_speed_table(run_speed_benchmark(config), config.baseline))
    if config.json:
        print(f"wrote {config.json}")


def run_bench_moe(config: Any) -> None:
    from .moe import format_moe_table, run_moe_benchmark

    print(format_moe_table(run_moe_benchmark(config)))


COMMANDS = (
    (("bench", "speed"), "ms/step, tokens/s and peak memory per model, length and mode",
     "Measure every model side by side in one run: median ms per step after warm-up, tokens/s, peak "
     "memory; prints a table, writes JSON.", "bench.speed:SpeedBenchConfig", run_bench_speed),
    (("bench", "moe"), "MoE layer vs a dense feed-forward of the same per-token compute",
     "Time one MoE feed-forward layer against a dense feed-forward of the same per-token compute, split "
     "into expert matmuls and routing + dispatch.", "bench.moe:MoEBenchConfig", run_bench_moe),
)
