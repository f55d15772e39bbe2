"""``tokenmix lra table``: runs collected into the layout of the FNet paper's LRA table (test accuracy
in %, one row per model, the paper's rows under them; the average is over the tasks present, excluding
Path-X as in the paper). A cell trained with fewer steps, shorter sequences, less data or another batch
size than LRA's official schedule is marked, so a CPU-budget run is not mistaken for a full one."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenmix.io.files import atomic_write, claim_outputs, read_json, write_json
from tokenmix.lra.configs import LRATableConfig
from tokenmix.lra.pathfinder import GENERATOR_VERSION
from tokenmix.lra.tasks import TABLE_COLUMNS, TASKS, lra_model_config

SUMMARY = "summary.json"  # written by `lra run` (tokenmix.lra.run)
# Beside a summary: `lra eval --json` of the run's model on another data folder (results/lra/runs.sh transfer:
# Pathfinder images of the original generator), so the table says whether the cell's skill transfers.
TRANSFER = "transfer.json"


def summaries(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every ``summary.json`` of kind ``lra`` under the given run directories."""
    found = []
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"no such run directory: {root}")
        for path in sorted([root] if root.is_file() else root.rglob(SUMMARY)):
            record = read_json(path)
            if record.get("kind") == "lra":
                found.append({**record, "path": str(path.parent)})
    return found


def collect(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{model: {task: the best record}}: of several runs of one (model, task), the best validation."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        cell = table.setdefault(record["model"], {})
        current = cell.get(record["task"])
        if current is None or record["val_accuracy"] > current["val_accuracy"]:
            cell[record["task"]] = record
    return table


# The FNet paper's Table 4 (test accuracy, %); None = failed (Path-X: no model beat chance).
PAPER = {
    "Transformer": {"listops": 36.06, "text": 61.54, "retrieval": 59.67, "image": 41.51, "pathfinder32": 80.38,
                    "pathfinder128": None},
    "Linear": {"listops": 33.75, "text": 53.35, "retrieval": 58.95, "image": 41.04, "pathfinder32": 83.69,
               "pathfinder128": None},
    "FNet": {"listops": 35.33, "text": 65.11, "retrieval": 59.61, "image": 38.67, "pathfinder32": 77.80,
             "pathfinder128": None},
}
# Cells no run can fill here, with the reason the table prints.
UNAVAILABLE = {"retrieval": "AAN pairs not available here (reader tested on a fixture)"}
# Training examples of the official generated data (the budget of an epoch-based task); other tasks: the run's own.
OFFICIAL_TRAIN_SIZE = {"listops": 96_000, "pathfinder32": 160_000, "pathfinder64": 160_000, "pathfinder128": 160_000}


def official_steps(task: str, train_examples: int) -> int:
    """Optimizer steps of the official LRA schedule of ``task``."""
    defaults = TASKS[task].train
    if defaults.get("max_steps"):
        return int(defaults["max_steps"])
    examples = OFFICIAL_TRAIN_SIZE.get(task, train_examples)
    return math.ceil(defaults["epochs"] * examples / defaults["batch_size"])


def changed_fields(record: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{field: (this run's value, LRA's)} for the model fields an ``--override`` moved off the task's
    official configuration (e.g. BERT's attention dropout, turned off for PyTorch's fused CPU kernel)."""
    keys = {item.split("=", 1)[0].strip() for item in record.get("config", {}).get("override", ())}
    mine = record.get("model_config", {})
    if not keys or not mine:
        return {}
    official = lra_model_config(record["model"], TASKS[record["task"]], "lra", mine["pooling"], {}).to_dict()
    return {k: (mine[k], official[k]) for k in sorted(keys) if k in mine and mine[k] != official.get(k)}


def shortfalls(record: dict[str, Any]) -> list[str]:
    """How a run falls short of LRA's official setting (model size, steps, sequence length, training data,
    batch size); [] = none."""
    task, config = record["task"], record.get("config", {})
    train = record.get("sizes", {}).get("train", 0)
    notes = []
    if record.get("preset", "lra") != "lra":
        notes.append(f"preset {record['preset']}, not LRA's model configuration")
    elif changed := changed_fields(record):
        notes.append(", ".join(f"{k} {mine} (official {official})" for k, (mine, official) in changed.items()))
    target = official_steps(task, train)
    if record["steps"] < target:
        notes.append(f"{record['steps']:,} of {target:,} steps" + (" (time limit)" if record.get("stop_reason") == "max_time" else ""))
    if config.get("max_len") and config["max_len"] < TASKS[task].seq_len:
        notes.append(f"first {config['max_len']} of {TASKS[task].seq_len} tokens")
    if task in OFFICIAL_TRAIN_SIZE and train < OFFICIAL_TRAIN_SIZE[task]:
        notes.append(f"{train:,} of {OFFICIAL_TRAIN_SIZE[task]:,} training examples")
    if task.startswith("pathfinder") and not config.get("data_dir") and \
            record.get("data", {}).get("train", {}).get("generator") != GENERATOR_VERSION:
        notes.append("images of an older generator, not the original's distribution")
    sampled = record.get("data", {}).get("test", {}).get("sampled_from")
    if sampled:
        notes.append(f"test on {record['sizes']['test']:,} of {sampled:,} examples")
    if config.get("batch_size") and config["batch_size"] != TASKS[task].train["batch_size"]:
        notes.append(f"batch {config['batch_size']} (official {TASKS[task].train['batch_size']})")
    return notes


def format_table(table: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown: one row per model run here (``*`` = trained below the official budget, ``-`` = not
    run, ``n/a`` = cannot run here; the notes under the table say why), then the paper's rows."""
    titles = [TASKS[name].title for name in TABLE_COLUMNS]
    lines = ["| Model | " + " | ".join(titles) + " | Avg |", "|---" * (len(titles) + 2) + "|"]
    notes: list[str] = []

    def row(model: str, scores: dict[str, float | None], marks: dict[str, str]) -> str:
        values = [marks.get(name, "-") if scores.get(name, -1.0) == -1.0 else
                  ("FAIL" if scores[name] is None else f"{scores[name]:.2f}{marks.get(name, '')}") for name in TABLE_COLUMNS]
        counted = [v for name, v in scores.items() if name != "pathfinder128" and v is not None]
        average = f"{sum(counted) / len(counted):.2f}" if counted else "-"
        if counted and len(counted) < len(TABLE_COLUMNS) - 1:
            average += f" ({len(counted)} of {len(TABLE_COLUMNS) - 1} tasks)"
        return f"| {model} | " + " | ".join(values) + f" | {average} |"

    for model, cells in table.items():
        scores: dict[str, float | None] = {}
        marks = {name: "n/a" for name in UNAVAILABLE}
        for name, record in cells.items():
            scores[name] = 100 * record["test_accuracy"]
            short = shortfalls(record)
            marks[name] = (" (chance)" if record.get("at_chance") else "") + ("*" if short else "")
            if short:
                notes.append(f"{model} {TASKS[name].title}: " + ", ".join(short))
            if (transfer := Path(record["path"]) / TRANSFER).is_file():
                t = read_json(transfer)
                notes.append(f"{model} {TASKS[name].title} on {t['examples']:,} examples of "
                             f"{t.get('data_dir', 'another data folder')} ({TRANSFER}, "
                             f"split {t['split']}): {100 * t['accuracy']:.2f}% (majority class {100 * t['majority_baseline']:.1f}%)")
        lines.append(row(model, scores, marks))
    for model, paper in PAPER.items():
        lines.append(row(f"{model} (paper)", dict(paper), {}))
    notes += [f"{TASKS[name].title}: {reason}" for name, reason in UNAVAILABLE.items()]
    return "\n".join(lines + [""] + [f"- {note}" for note in notes] if notes else lines)


COST_FIELDS = ("best_step", "steps", "train_seconds", "steps_per_s", "peak_memory_mib", "majority_baseline", "device")


def format_costs(table: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown: what each cell of the table cost (steps, training minutes, steps/s, memory, device) beside
    its accuracy, task by task, so models are compared per CPU minute and not only per cell."""
    lines = ["| Task | Model | Test % | Majority % | Best step / steps | Train min | Steps/s | Peak MiB | Device |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]

    def number(value: float | None, spec: str, scale: float | None = None) -> str:
        return "-" if value is None else format(value if scale is None else value * scale, spec)

    for task in TASKS:
        for model, cells in table.items():
            if (r := cells.get(task)) is None:
                continue
            lines.append(f"| {TASKS[task].title} | {model} | {100 * r['test_accuracy']:.2f} | "
                         f"{number(r.get('majority_baseline'), '.1f', 100)} | {number(r.get('best_step'), ',')} / "
                         f"{r['steps']:,} | {number(r.get('train_seconds'), '.1f', 1 / 60)} | "
                         f"{number(r.get('steps_per_s'), '.3g')} | {number(r.get('peak_memory_mib'), '.0f')} | "
                         f"{r.get('device', '-')} |")
    return "\n".join(lines)


def run_table(config: LRATableConfig) -> str:
    claim_outputs(config)  # an existing output is refused unless config.overwrite, before any work
    records = summaries(config.runs)
    if not records:
        raise FileNotFoundError(f"no LRA summary.json under {', '.join(config.runs)}; train with `tokenmix lra run`")
    table = collect(records)
    text = format_table(table) + "\n\nWhat each cell cost:\n\n" + format_costs(table)
    if config.json:
        write_json(config.json, {model: {task: {**{k: r[k] for k in ("test_accuracy", "val_accuracy", "path", "steps")},
                                                **{k: r.get(k) for k in COST_FIELDS}, "below_budget": shortfalls(r)}
                                         for task, r in cells.items()} for model, cells in table.items()})
    if config.markdown:
        atomic_write(Path(config.markdown), lambda tmp: Path(tmp).write_text(text + "\n"))
    return text
