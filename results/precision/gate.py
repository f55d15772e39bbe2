"""Issue 21 gate for --precision auto: do bf16 pretraining loss curves match fp32 within seed noise?
Reads the runs of gate.sh (RUNS/MODEL-PRECISION-SEED/metrics.jsonl) and prints a markdown table: held-out
MLM loss and accuracy at the end (mean ± sd over seeds), and the largest |bf16 - fp32| gap of the training
loss curve (100-step means, same seed) beside the seed-to-seed spread of fp32 at the same points.
Usage: python results/precision/gate.py /work/runs/gate > results/precision/gate.md"""

import json
import statistics
import sys
from pathlib import Path

runs = Path(sys.argv[1])


def records(run: Path, split: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("split") == split]


def curve(run: Path) -> list[float]:
    """Training loss, mean over each 100-step window."""
    train = records(run, "train")
    return [statistics.mean(r["loss"] for r in train if w < r["step"] <= w + 100) for w in range(0, 1000, 100)]


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


print("| model | precision | seeds | held-out MLM loss | held-out MLM acc | max \\|bf16 − fp32\\| (same seed, 100-step means) "
      "| fp32 seed spread (max − min) at that point |")
print("|---|---|---:|---:|---:|---:|---:|")
for model in ("fnet", "bert"):
    done = {p: sorted(s for s in (0, 1, 2) if (runs / f"{model}-{p}-{s}" / "summary.json").is_file()) for p in ("fp32", "bf16")}
    curves = {(p, s): curve(runs / f"{model}-{p}-{s}") for p in done for s in done[p]}
    paired = [s for s in done["bf16"] if s in done["fp32"]]
    gap, spread = 0.0, 0.0
    for s in paired:
        diffs = [abs(a - b) for a, b in zip(curves["bf16", s], curves["fp32", s])]
        i = max(range(len(diffs)), key=diffs.__getitem__)
        if diffs[i] > gap:
            fp32 = [curves["fp32", t][i] for t in done["fp32"]]
            gap, spread = diffs[i], max(fp32) - min(fp32)
    for p in ("fp32", "bf16"):
        if not done[p]:
            continue
        final = [json.loads((runs / f"{model}-{p}-{s}" / "summary.json").read_text())["heldout"] for s in done[p]]
        extra = f"{gap:.3f} | {spread:.3f}" if p == "bf16" and paired else " | "
        print(f"| {model} | {p} | {len(done[p])} | {mean_sd([f['mlm_loss'] for f in final])} | "
              f"{mean_sd([f['mlm_accuracy'] for f in final])} | {extra} |")
