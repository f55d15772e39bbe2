"""``tokenmix lra ...`` commands (the table is collected by ``tokenmix.cli``). Runners import their
modules lazily so that building the parser stays torch-free."""

from __future__ import annotations

from typing import Any

GROUP_HELP = {"lra": "Long Range Arena tasks, evaluation and the speed/memory table"}


def _baselines(record: dict[str, Any], rule: str) -> str:
    """'majority class X%' plus, for ListOps, the first-operator rule (``rule`` says where it was fitted)."""
    text = f"majority class {100 * record['majority_baseline']:.2f}%"
    if "root_op_baseline" in record:
        text += f", first-operator rule{rule} {100 * record['root_op_baseline']:.2f}%"
    return text


def run_lra_run(config: Any) -> None:
    from tokenmix.lra.run import run_lra

    s = run_lra(config)
    flag = " (at chance)" if s["at_chance"] else ""
    baselines = _baselines(s, "")
    print(f"{s['task']} {s['model']} ({s['params'] / 1e6:.2f}M params): test accuracy {100 * s['test_accuracy']:.2f}%{flag} "
          f"(best validation {100 * s['val_accuracy']:.2f}% at step {s['best_step']}; {baselines}), {s['steps']} steps "
          f"at {s['steps_per_s']:.2f} steps/s, peak {s['peak_memory_mib']:.0f} MiB; wrote {config.out}/summary.json")


def run_lra_eval(config: Any) -> None:
    from tokenmix.lra.run import run_eval

    r = run_eval(config)
    baselines = _baselines(r, " fitted on this split")
    print(f"{r['task']} {r['split']} ({r['examples']} examples): accuracy {100 * r['accuracy']:.2f}%, loss {r['loss']:.4f} "
          f"({baselines})" + (f"; wrote {config.json}" if config.json else ""))


def run_lra_table(config: Any) -> None:
    from tokenmix.lra.table import run_table

    print(run_table(config))


def run_lra_speed(config: Any) -> None:
    from tokenmix.lra.speed import format_markdown, run_speed_table

    result = run_speed_table(config)
    print(format_markdown(result, config.baseline))
    print(f"wrote {config.out}/speed.json, speed.md, speed.png ({len(result['results'])} configurations)")


COMMANDS = (
    (("lra", "run"), "train a model from scratch on an LRA task; test accuracy of the best-validation checkpoint",
     "Train any variant on an LRA task (official base config with --preset lra, CLS or mean pooling) with the "
     "shared trainer: progress bar, metrics.jsonl, checkpoints, --resume, --max-time. ListOps and Pathfinder "
     "data are generated (deterministic, cached) when no --data-dir is given. Writes summary.json.",
     "lra.run:LRARunConfig", run_lra_run),
    (("lra", "eval"), "evaluate a trained LRA run on data in the official file format",
     "Score the best model of an `lra run` directory on a split of any data folder in the task's official "
     "format; --json writes the result.", "lra.run:LRAEvalConfig", run_lra_eval),
    (("lra", "table"), "collect LRA runs into the paper's table (ListOps ... Path-X, average)",
     "Read every summary.json under the run directories and print test accuracies in the layout of the FNet "
     "paper's LRA table.", "lra.table:LRATableConfig", run_lra_table),
    (("lra", "speed"), "training steps/s and peak memory at 512-8192 tokens (paper Table 5)",
     "Measure LRA training steps (Text configuration) for each model and length in a fresh process with a "
     "memory cap and a time budget; OOM and over-budget are reported as such. Writes speed.json, a "
     "markdown table and a log-log plot with fitted memory exponents.", "lra.speed:LRASpeedConfig", run_lra_speed),
)
