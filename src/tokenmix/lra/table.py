"""``tokenmix lra table``: runs collected into the layout of the FNet paper's LRA table (test accuracy
in %, one row per model; the average is over the tasks present, excluding Path-X as in the paper)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenmix.io.files import atomic_write, write_json
from tokenmix.lra.configs import LRATableConfig
from tokenmix.lra.tasks import TABLE_COLUMNS, TASKS

SUMMARY = "summary.json"  # written by `lra run` (tokenmix.lra.run)


def summaries(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every ``summary.json`` of kind ``lra`` under the given run directories."""
    found = []
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"no such run directory: {root}")
        for path in sorted([root] if root.is_file() else root.rglob(SUMMARY)):
            record = json.loads(path.read_text())
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


def format_table(table: dict[str, dict[str, dict[str, Any]]]) -> str:
    titles = [TASKS[name].title for name in TABLE_COLUMNS]
    lines = ["| Model | " + " | ".join(titles) + " | Avg |", "|---" * (len(titles) + 2) + "|"]
    for model, cells in table.items():
        values, scores = [], []
        for name in TABLE_COLUMNS:
            record = cells.get(name)
            if record is None:
                values.append("-")
                continue
            accuracy = 100 * record["test_accuracy"]
            values.append(f"{accuracy:.2f}" + (" (chance)" if record.get("at_chance") else ""))
            if name != "pathfinder128":
                scores.append(accuracy)
        average = f"{sum(scores) / len(scores):.2f}" if scores else "-"
        if scores and len(scores) < len(TABLE_COLUMNS) - 1:
            average += f" ({len(scores)} tasks)"
        lines.append(f"| {model} | " + " | ".join(values) + f" | {average} |")
    return "\n".join(lines)


def run_table(config: LRATableConfig) -> str:
    records = summaries(config.runs)
    if not records:
        raise FileNotFoundError(f"no LRA summary.json under {', '.join(config.runs)}; train with `tokenmix lra run`")
    table = collect(records)
    text = format_table(table)
    if config.json:
        write_json(config.json, {model: {task: {k: r[k] for k in ("test_accuracy", "val_accuracy", "path", "steps")}
                                         for task, r in cells.items()} for model, cells in table.items()})
    if config.markdown:
        atomic_write(Path(config.markdown), lambda tmp: Path(tmp).write_text(text + "\n"))
    return text
