"""fp32 vs bf16 per-step CPU time of `tokenmix bench speed`'s steps (mini, @128, batch 32), on one
thread, the two precisions interleaved step by step.

Why CPU time: on the shared 2-core machine of this project (load average 10-16 from other jobs while
this ran) wall-clock step times measure the scheduler more than the step; the process's CPU time on
one thread is what the step costs. Usage:

    python results/precision/cpu_time.py MODELS MODES REPEATS OUT.json
    python results/precision/cpu_time.py fnet,bert pretrain,train,inference 5 fnet_bert.json
"""

import json
import sys
import time

import torch

from tokenmix.bench.configs import SpeedBenchConfig
from tokenmix.bench.speed import build, make_step

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def main(models: list[str], modes: list[str], repeats: int, out: str) -> None:
    torch.set_num_threads(1)
    cpu, results = torch.device("cpu"), {}
    for mode in modes:
        for name in models:
            steps = {}
            for precision, dtype in PRECISIONS.items():
                config = SpeedBenchConfig(models=(name,), seq_lens=(128,), batch_size=32, mode=(mode,))
                torch.manual_seed(0)
                model, forward = build(name, mode, 128, config, cpu, torch.Generator().manual_seed(0))
                steps[precision] = make_step(mode, model, model, forward, dtype, cpu)[0]
                for _ in range(2):  # warm-up (and the Fourier autotuner's measurement)
                    steps[precision]()
            times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
            for _ in range(repeats):
                for precision, step in steps.items():
                    start = time.process_time()
                    step()
                    times[precision].append((time.process_time() - start) * 1e3)
            median = {p: sorted(t)[len(t) // 2] for p, t in times.items()}
            results[f"{name} {mode}"] = {"model": name, "mode": mode, "fp32_cpu_ms": round(median["fp32"], 1),
                                         "bf16_cpu_ms": round(median["bf16"], 1),
                                         "fp32_over_bf16": round(median["fp32"] / median["bf16"], 2), "times_ms": times}
            print(f"{name:8s} {mode:10s} fp32 {median['fp32']:8.1f}  bf16 {median['bf16']:8.1f} CPU-ms  "
                  f"fp32/bf16 {median['fp32'] / median['bf16']:.2f}", flush=True)
    with open(out, "w") as file:
        json.dump(results, file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1].split(","), sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4])
