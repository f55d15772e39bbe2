"""Whole benchmarks: ``tokenmix glue`` and ``tokenmix superglue`` (``--init DIR --data-dir DIR --out DIR``).

One :func:`~tokenmix.train.finetune.run_finetune` per task (``OUT/<task>/``), then ``<benchmark>.json``
and ``<benchmark>.md`` — GLUE in the layout of the FNet paper's Table 2 with the paper's rows beside
ours, SuperGLUE in the Sparse Mixers paper's columns — and the submission files
(``OUT/submission/CoLA.tsv``, ``BoolQ.jsonl``, ...) for tasks with test files. SuperGLUE's
diagnostics AX-b and AX-g are scored with the RTE model, as the leaderboard does. With ``--resume``
finished tasks are read back instead of retrained.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from tokenmix.benchmarks import glue, superglue
from tokenmix.benchmarks.adapters import get_adapter
from tokenmix.benchmarks.glue import GLUE_TABLE_COLUMNS
from tokenmix.benchmarks.glue_metrics import FLOOR_LABEL, FLOOR_NOTE, constant_baselines, floor_cells, glue_average
from tokenmix.benchmarks.superglue import SUPERGLUE_TABLE_COLUMNS
from tokenmix.benchmarks.superglue_metrics import superglue_average
from tokenmix.io.files import atomic_write, ensure_writable, read_json, write_json
from tokenmix.options import refuse_repeats
from tokenmix.reporting import paper
from tokenmix.reporting.tables import render_table
from tokenmix.text.classifier import TextClassifier
from tokenmix.train.configs import FinetuneConfig, FinetuneOptions, GlueConfig
from tokenmix.train.finetune import run_finetune
from tokenmix.train.supervised import claim_sweep_dir


def _tasks(config: GlueConfig, benchmark: str) -> list[str]:
    if config.tasks:
        chosen = [get_adapter(benchmark, name).name for name in config.tasks]
        refuse_repeats("--tasks", chosen, "task")  # its second run would be refused only after the first trained
        return chosen
    root = Path(config.data_dir)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        raise FileNotFoundError(f"--data-dir {root} {what}; point it at a folder in the official {benchmark} layout")
    names = glue.TASKS if benchmark == "glue" else superglue.BENCHMARK_TASKS
    found = []
    for name in names:
        adapter = get_adapter(benchmark, name)
        if adapter.has(root, "train") or (config.train_from_dev and adapter.eval_splits
                                          and adapter.has(root, adapter.eval_splits[0])):
            found.append(name)
    if not found:
        raise FileNotFoundError(f"no {benchmark} task folders with a train split in {root}")
    return found


def _columns(benchmark: str, task: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The table column(s) of one task: MNLI gives two (matched, mismatched)."""
    if task == "mnli":
        return {"mnli-m": metrics["splits"]["dev_matched"]["accuracy"],
                "mnli-mm": metrics["splits"]["dev_mismatched"]["accuracy"]}
    return {task: metrics["score"]}


def format_benchmark_table(result: dict[str, Any]) -> str:
    """Markdown: our row in the paper's column order (GLUE: with the paper's Base rows beside it)."""
    names = GLUE_TABLE_COLUMNS if result["kind"] == "glue" else SUPERGLUE_TABLE_COLUMNS
    columns = [c for c in names if c in result["scores"]]
    label = f"{result['model']} ({result['preset'] or result['init']})"
    rows: list[list[str | float | None]] = [[label, *(f"{result['scores'][c]:.1f}" for c in columns),
                                             f"{result['average']:.1f}"]]
    floor = result.get("input_ignored") or {}
    if floor:  # a score at the floor reads as one
        rows.append([FLOOR_LABEL, *floor_cells(floor, columns)])
    if result["kind"] == "glue":
        for name in dict.fromkeys(("bert-base", "fnet-base", f"{result['model']}-base")):
            if name in paper.GLUE:
                values = dict(zip(paper.GLUE_COLUMNS, paper.GLUE[name]))
                rows.append([f"paper {name}", *("FAIL" if values.get(c, "") is None else values.get(c, "-")
                                                for c in columns), paper.GLUE_AVERAGE[name]])
    table = render_table(["model", *(names[c] for c in columns), "avg"], rows, markdown=True)
    notes = [f"Average: {result['average_convention']}."] + [f"{t}: {why}" for t, why in result["notes"].items()]
    if floor:
        notes.append(FLOOR_NOTE)
    if result["kind"] == "glue":
        notes.append("Paper rows: FNet paper Table 2 (Base models, full training sets); their averages cover all "
                     "nine columns, ours only the columns shown.")
    else:
        notes.append("Paper (Sparse Mixers, Base): Sparse Mixer <1% above BERT-Base on SuperGLUE, Fast Sparse Mixer "
                     "<0.2% below it; compare ratios to a BERT run of the same size.")
    for name, scores in result.get("diagnostics", {}).items():
        notes.append(f"{name} (scored with the RTE model): " + ", ".join(f"{k} {v:.1f}" for k, v in scores.items()))
    return table + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _diagnostics(rte_dir: Path, data_dir: str, out: Path, submission_dir: Path) -> dict[str, Any]:
    """AX-b and AX-g predicted by the fine-tuned RTE model: metrics, predictions, submission files."""
    classifier, results = TextClassifier.from_pretrained(rte_dir / "best", device="cpu"), {}
    for name in ("axb", "axg"):
        adapter = get_adapter("superglue", name)
        if not adapter.has(data_dir, "test"):
            continue
        split = adapter.read(data_dir, "test")
        values = adapter.values(classifier.logits(split.examples, 128))
        adapter.write_predictions(out / name, split, values)
        adapter.write_submission(submission_dir, split, values)
        results[name] = adapter.metrics(split, values)
    return results


def run_suite(config: GlueConfig, benchmark: str) -> dict[str, Any]:
    out, tasks, submission = Path(config.out), _tasks(config, benchmark), Path(config.out) / "submission"
    ensure_writable(out, directory=True, flag="--out")
    for name in tasks:  # every task's folder now: one holding a run is refused before the tasks before it train
        claim_sweep_dir(out / name, config)
    options = {f.name: getattr(config, f.name) for f in fields(FinetuneOptions)}
    results: dict[str, Any] = {}
    for name in tasks:
        task_out = out / name
        if config.resume and (task_out / "metrics.json").is_file():
            results[name] = read_json(task_out / "metrics.json")
            continue
        adapter = get_adapter(benchmark, name)
        has_tests = any(adapter.has(config.data_dir, split) for split in adapter.test_splits)
        results[name] = run_finetune(FinetuneConfig(**{**options, "out": str(task_out)}, task=name, benchmark=benchmark),
                                     submission_dir=submission if has_tests else None)
    scores = {col: value for name, m in results.items() for col, value in _columns(benchmark, name, m).items()}
    floor: dict[str, float] = {}
    if benchmark == "glue":
        average, convention = glue_average(scores), glue.AVERAGE_CONVENTION
        floor = constant_baselines(config.data_dir, list(scores))

    else:
        average = superglue_average(scores)
        convention = ("mean over tasks of each task's score, CB (accuracy, F1), MultiRC (F1a, EM) and ReCoRD (F1, EM) "
                      "counting as the mean of their two metrics, AX-b/AX-g excluded: the leaderboard's convention")
    first = next(iter(results.values()))
    result = {
        "kind": benchmark, "model": first["model"], "preset": config.preset if config.init == "scratch" else "",
        "init": config.init, "params": first["params"],
        "tasks": {name: {"metrics": m["splits"], "score": m["score"], "score_metric": m["score_metric"],
                         "best_lr": m["best_lr"], "steps_per_s": m["steps_per_s"], "train_examples": m["train_examples"],
                         "protocol": m["protocol"] or "train on the train split, evaluate on dev"}
                  for name, m in results.items()},
        "scores": scores, "input_ignored": floor, "average": average, "average_convention": convention,
        "notes": {name: m["protocol"] for name, m in results.items() if m["protocol"]}, "config": asdict(config),
    }
    if benchmark == "superglue" and "rte" in results:
        result["diagnostics"] = _diagnostics(out / "rte", config.data_dir, out, submission)
    write_json(out / f"{benchmark}.json", result)
    atomic_write(out / f"{benchmark}.md", lambda tmp: Path(tmp).write_text(format_benchmark_table(result)))
    return result
