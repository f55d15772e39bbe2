"""Issue 21 budget-recipe ablations: one markdown table from the runs of ablate.sh (RUNS/NAME/metrics.jsonl).
Held-out MLM accuracy/loss at 300 s of training clock and at the end (600 s), steps and tokens/s, and the
difference of end accuracy from the base run beside the base's seed-to-seed difference (the noise reference).
Usage: python results/budget/ablate.py /work/runs/ablate > results/budget/ablations.md"""

import json
import sys
from pathlib import Path

RUNS = Path(sys.argv[1])
ROWS = {  # run name -> what differs from the base (the study's setting)
    "base": "base: MLM only, budget schedule, lr 1e-3, batch 64, no dropout, 8k vocabulary (seed 0)",
    "base-seed1": "base, seed 1 (noise reference)",
    "nsp-swap": "MLM + NSP (`--nsp swap`)",
    "schedule-linear": "decay at `--max-steps` 1M (`--schedule linear`): constant lr after warm-up",
    "dropout-0.1": "dropout 0.1 (paper)",
    "batch-32": "batch 32 (paper)",
    "lr-5e-4": "lr 5e-4",
    "lr-2e-3": "lr 2e-3",
    "wsd-0.2": "hold the peak, decay over the last fifth of the budget (`--decay-fraction 0.2`)",
    "vocab-32k": "32k vocabulary (paper) — accuracy over a different vocabulary, not comparable 1:1",
}


def heldout(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("split") == "heldout"]


def at(records: list[dict], seconds: float) -> dict:
    """The last held-out evaluation made within `seconds` of training clock."""
    return [r for r in records if r["train_seconds"] <= seconds + 1][-1]


done = [n for n in ROWS if (RUNS / n / "summary.json").is_file()]
end = {n: json.loads((RUNS / n / "summary.json").read_text()) for n in done}
print("| run | steps | tokens/s | held-out MLM acc @300 s | @600 s (end) | Δ acc vs base | held-out MLM loss (end) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in done:
    s, curve = end[name], heldout(RUNS / name)
    delta = f"{s['heldout']['mlm_accuracy'] - end['base']['heldout']['mlm_accuracy']:+.3f}" if "base" in end else ""
    print(f"| {ROWS[name]} | {s['steps']} | {s['tokens_per_s']:.0f} | {at(curve, 300)['mlm_accuracy']:.3f} "
          f"| {s['heldout']['mlm_accuracy']:.3f} | {delta} | {s['heldout']['mlm_loss']:.3f} |")
