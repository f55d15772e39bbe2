"""The whole GLUE benchmark: ``tokenmix glue --init DIR --data-dir DIR --out DIR``.

One :func:`~tokenmix.train.finetune.run_finetune` per task (``OUT/<task>/``), then ``glue.json``
and ``glue.md``, a table in the layout of the FNet paper's Table 2 with the paper's rows beside
ours, and the GLUE-server submission files (``OUT/submission/CoLA.tsv`` ...) for tasks whose
folder has test files. With ``--resume`` finished tasks are read back instead of retrained.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..utils import atomic_write, write_json
from .finetune import FinetuneConfig, FinetuneOptions
from .loop import _f


@dataclass
class GlueConfig(FinetuneOptions):
    tasks: tuple[str, ...] = _f((), "tasks to run (default: every GLUE task with a train.tsv in --data-dir, or a "
                                    "dev split when --train-from-dev is set)")


COLUMN_NAMES = {"mnli-m": "MNLI-m", "mnli-mm": "MNLI-mm", "qqp": "QQP", "qnli": "QNLI", "sst2": "SST-2", "cola": "CoLA",
                "stsb": "STS-B", "mrpc": "MRPC", "rte": "RTE", "wnli": "WNLI"}


def available_tasks(config: GlueConfig) -> list[str]:
    from ..tasks.glue import TASKS, get_task

    if config.tasks:
        return [get_task(name).name for name in config.tasks]
    root = Path(config.data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--data-dir {root} does not exist; point it at a folder in the official GLUE layout")
    found = [t.name for t in TASKS.values() if (root / t.folder / "train.tsv").is_file()
             or (config.train_from_dev and (root / t.folder / f"{t.eval_splits[0]}.tsv").is_file())]
    if not found:
        raise FileNotFoundError(f"no GLUE task folders with a train.tsv in {root} (expected e.g. SST-2/, CoLA/)")
    return found


def task_scores(task: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The Table 2 column(s) of one task: MNLI gives two (matched, mismatched)."""
    if task == "mnli":
        return {"mnli-m": metrics["splits"]["dev_matched"]["accuracy"],
                "mnli-mm": metrics["splits"]["dev_mismatched"]["accuracy"]}
    return {task: metrics["score"]}


def format_glue(result: dict[str, Any]) -> str:
    """Markdown: our row, then the paper's Base rows, in the paper's column order."""
    from .. import paper
    from ..tables import render_markdown

    columns = [c for c in paper.GLUE_COLUMNS if c in result["scores"]] + (["wnli"] if "wnli" in result["scores"] else [])
    ours = [f"{result['model']} ({result['preset'] or 'init'})", *(f"{result['scores'][c]:.1f}" for c in columns),
            f"{result['average']:.1f}"]
    rows = [ours]
    for name in ("bert-base", "fnet-base", f"{result['model']}-base"):
        if name in paper.GLUE and (name != rows[-1][0]):
            values = dict(zip(paper.GLUE_COLUMNS, paper.GLUE[name]))
            rows.append([f"paper {name}", *("FAIL" if values.get(c, "") is None else values.get(c, "") for c in columns),
                         paper.GLUE_AVERAGE[name]])
    rows = [r for i, r in enumerate(rows) if r[0] not in {x[0] for x in rows[:i]}]
    headers = ["model", *(COLUMN_NAMES[c] for c in columns), "avg"]
    notes = [f"Average: {result['average_convention']}. Paper rows: FNet paper Table 2 (Base models, full GLUE "
             "training sets); their averages cover all nine columns, ours only the columns shown."]
    notes += [f"{task}: {reason}" for task, reason in result.get("notes", {}).items()]
    return render_markdown(headers, rows) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def run_glue(config: GlueConfig) -> dict[str, Any]:
    from ..metrics.glue import glue_average
    from ..tasks.glue import AVERAGE_CONVENTION, get_task
    from .finetune import run_finetune

    out, tasks = Path(config.out), available_tasks(config)
    options = {f.name: getattr(config, f.name) for f in fields(FinetuneOptions)}
    results: dict[str, Any] = {}
    for name in tasks:
        task_out = out / name
        if config.resume and (task_out / "metrics.json").is_file():
            results[name] = json.loads((task_out / "metrics.json").read_text())
            continue
        has_tests = any((Path(config.data_dir) / get_task(name).folder / f"{s}.tsv").is_file()
                        for s in get_task(name).test_splits)
        results[name] = run_finetune(FinetuneConfig(**{**options, "out": str(task_out)}, task=name),
                                     submission_dir=out / "submission" if has_tests else None)
    scores = {column: value for name, metrics in results.items() for column, value in task_scores(name, metrics).items()}
    first = next(iter(results.values()))
    result = {
        "kind": "glue", "model": first["model"], "preset": config.preset if config.init == "scratch" else "",
        "init": config.init, "params": first["params"],
        "tasks": {name: {"metrics": m["splits"], "score": m["score"], "score_metric": m["score_metric"],
                         "best_lr": m["best_lr"], "steps_per_s": m["steps_per_s"], "train_examples": m["train_examples"],
                         "protocol": m.get("protocol", "train on train.tsv, evaluate on dev")}
                  for name, m in results.items()},
        "scores": scores, "average": glue_average(scores), "average_convention": AVERAGE_CONVENTION,
        "notes": {name: m["protocol"] for name, m in results.items() if m.get("protocol")},
        "config": asdict(config),
    }
    write_json(out / "glue.json", result)
    atomic_write(out / "glue.md", lambda tmp: Path(tmp).write_text(format_glue(result)))
    return result
