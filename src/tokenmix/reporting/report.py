"""``tokenmix report RUNS_DIR --out DIR``: one markdown report from a folder of run summaries.

Tables in the layout of the FNet paper (pretraining metrics as its Table 1, GLUE as Table 2, then
LRA and the speed benchmarks) and its Figure 2: accuracy against time per training step with the
Pareto front, one point per model and size. The GLUE average is the headline accuracy; held-out
MLM accuracy gets its own plot. Time per step comes from the matching pretraining run's steps/s,
else from a benchmark file (see :func:`bench_time`), and every point says which.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenmix.benchmarks.glue import column_title
from tokenmix.benchmarks.glue_metrics import FLOOR_LABEL, FLOOR_NOTE, floor_cells
from tokenmix.io.files import atomic_write, claim_outputs
from tokenmix.models.config import PRESETS
from tokenmix.models.registry import list_models
from tokenmix.reporting import paper
from tokenmix.reporting.configs import ReportConfig
from tokenmix.reporting.pareto import Point, pareto_front, plot_pareto
from tokenmix.reporting.summaries import KINDS, Collection, Summary, collect
from tokenmix.reporting.tables import mib, render_table

LRA_TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")
BENCH_MODES = ("pretrain", "train", "inference")  # preferred order for a time per training step
DEFAULT_LENGTH = 512  # benchmark length used when the run does not say (the paper's Figure 2 length)


def _num(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _millions(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}M"


def _as_percent(value: float) -> float:
    """LRA accuracies may be stored as fractions or as percentages."""
    return value * 100 if abs(value) <= 1 else value


def _order(summaries: list[Summary], size: Callable[[Summary], str] = lambda s: s.data.get("preset") or ""
           ) -> list[Summary]:
    """Smallest size first, then the registry's model order (unknown names last)."""
    sizes, models = list(PRESETS), list_models()

    def key(s: Summary) -> tuple:
        preset, model = size(s), s.data.get("model", "")
        return (sizes.index(preset) if preset in sizes else len(sizes), preset,
                models.index(model) if model in models else len(models), model, s.path)

    return sorted(summaries, key=key)


def _shape(run: dict[str, Any]) -> str:
    config = run.get("config", {})
    return f"{config.get('max_seq_len', '?')} × {config.get('batch_size', '?')}"


def pretraining_table(runs: list[Summary]) -> str:
    rows = []
    for s in _order(runs):
        r, held = s.data, s.data.get("heldout", {})
        rows.append([r["model"], r.get("preset", "-"), _millions(r.get("params")), r.get("steps", "-"),
                     _num(1e3 / r["steps_per_s"] if r.get("steps_per_s") else None, ".0f"),
                     _num(r.get("tokens_per_s"), ".0f"), _num(held.get("mlm_loss"), ".3f"),
                     _num(held.get("mlm_accuracy"), ".3f"), _num(held.get("nsp_loss"), ".3f"),
                     _num(held.get("nsp_accuracy"), ".3f"), _shape(r), r.get("device", "-"), f"`{s.path}`"])
    return render_table(["model", "size", "params", "steps", "ms/step", "tokens/s", "MLM loss", "MLM acc",
                         "NSP loss", "NSP acc", "length × batch", "device", "run"], rows, markdown=True)


def glue_scores(glue: dict[str, Any]) -> dict[str, float]:
    """The Table 2 columns (MNLI matched and mismatched apart) or, failing that, one per task."""
    return glue.get("scores") or {task: t["score"] for task, t in glue.get("tasks", {}).items() if "score" in t}


def glue_size(glue: dict[str, Any], runs: list[Summary]) -> str:
    """The preset, from the summary or from the pretraining run the model was fine-tuned from."""
    run = _matching_run(glue, runs)
    return glue.get("preset") or (run.data.get("preset") if run else "") or "-"


def glue_table(summaries: list[Summary], runs: list[Summary], paper_rows: bool) -> str:
    ordered = _order(summaries, lambda s: glue_size(s.data, runs))
    scores = [glue_scores(s.data) for s in ordered]
    present = {c for row in scores for c in row}
    columns = [c for c in paper.GLUE_COLUMNS if c in present] + sorted(present - set(paper.GLUE_COLUMNS))
    rows = []
    for s, row in zip(ordered, scores):
        g = s.data
        rows.append([g["model"], glue_size(g, runs), f"`{g.get('init', '-')}`", _millions(g.get("params")),
                     *(_num(row.get(c), ".1f") for c in columns), _num(g.get("average"), ".1f"), f"`{s.path}`"])
    # the floor each glue.json measured on its data: one row per distinct floor (runs on other data differ)
    floors = {json.dumps(s.data["input_ignored"], sort_keys=True): s for s in ordered if s.data.get("input_ignored")}
    for s in floors.values():
        rows.append([FLOOR_LABEL, "-", "-", "-", *floor_cells(s.data["input_ignored"], columns), f"`{s.path}`"])
    if paper_rows:
        for model in dict.fromkeys(s.data["model"] for s in ordered):
            name = f"{model}-base"
            if name in paper.GLUE:
                values = dict(zip(paper.GLUE_COLUMNS, paper.GLUE[name]))
                rows.append([f"paper: {model}", "base", "pretrained", "-",
                             *("FAIL" if c in values and values[c] is None else values.get(c, "-") for c in columns),
                             paper.GLUE_AVERAGE[name], "FNet paper, Table 2"])
    headers = ["model", "size", "init", "params", *map(column_title, columns), "avg", "file"]
    notes = ([FLOOR_NOTE] if floors else []) + (["Paper rows: Base models on the full training sets; their averages "
                                                 "cover all nine columns."] if paper_rows else [])
    return render_table(headers, rows, markdown=True) + "".join(f"\n\n{note}" for note in notes)


def lra_tables(summaries: list[Summary]) -> str:
    tasks = sorted({s.data["task"] for s in summaries},
                   key=lambda t: (LRA_TASKS.index(t) if t in LRA_TASKS else len(LRA_TASKS), t))
    grid: dict[tuple[str, str], dict[str, float]] = {}
    for s in _order(summaries):
        grid.setdefault((s.data["model"], s.data.get("preset") or "-"), {})[s.data["task"]] = s.data["test_accuracy"]
    accuracy = []
    for (model, size), row in grid.items():
        accuracy.append([model, size, *(_num(_as_percent(row[t]) if t in row else None, ".1f") for t in tasks),
                         _num(sum(map(_as_percent, row.values())) / len(row), ".1f") if len(row) == len(tasks) else "-"])
    speed = [[s.data["model"], s.data.get("preset") or "-", s.data["task"], _num(_as_percent(s.data["test_accuracy"]), ".1f"),
              "yes" if s.data.get("at_chance") else "", _num(s.data.get("steps_per_s"), ".3g"),
              _num(s.data.get("peak_memory_mib"), ".0f"), f"`{s.path}`"] for s in _order(summaries)]
    return (render_table(["model", "size", *tasks, "avg"], accuracy, markdown=True) + "\n\nTest accuracy (%); the average only "
            "for models with every task; at chance: no better than the majority class (as the LRA run flags it).\n\n"
            + render_table(["model", "size", "task", "test acc", "at chance", "steps/s", "peak MiB", "run"], speed,
                           markdown=True))


def speed_tables(summaries: list[Summary]) -> str:
    parts = []
    for s in summaries:
        records = s.data["results"]
        devices = ", ".join(dict.fromkeys(str(r["device"]) for r in records if r.get("device"))) or "?"
        rows = [[r["model"], r.get("preset", "-"), r.get("mode", "-"), r.get("seq_len", "-"), r.get("batch_size", "-"),
                 _num(r["ms_per_step"], ".1f") if r.get("ms_per_step") is not None else r.get("error", "failed"),
                 _num(r.get("tokens_per_s"), ".0f"), mib(r.get("peak_mem_bytes"))] for r in records]
        parts.append(f"`{s.path}` (device: {devices})\n\n" + render_table(
            ["model", "size", "mode", "length", "batch", "ms/step", "tokens/s", "peak MiB"], rows, markdown=True))
    return "\n\n".join(parts)


def _matching_run(glue: dict[str, Any], runs: list[Summary]) -> Summary | None:
    """The pretraining run a GLUE model was fine-tuned from (its ``init`` lies in the run's folder),
    else a run of the same model and size."""
    init = str(glue.get("init") or "")
    for s in runs:
        out = s.data.get("config", {}).get("out")
        if out and init and (Path(init) == Path(out) or Path(out) in Path(init).parents):
            return s
    return next((s for s in runs if s.data["model"] == glue["model"] and glue.get("preset")
                 and s.data.get("preset") == glue["preset"]), None)


def bench_time(model: str, size: str, length: int, speeds: list[Summary]) -> tuple[float, str] | None:
    """ms per step of ``model`` in a benchmark file: a pretraining step if measured, else a training
    step, else inference; at the length closest to ``length``; the same size when it is known."""
    found = [(s, r) for s in speeds for r in s.data["results"] if r["model"] == model and r.get("ms_per_step")
             and (size in ("", "-") or r.get("preset", size) == size)]
    if not found:
        return None
    rank = {mode: i for i, mode in enumerate(BENCH_MODES)}
    s, r = min(found, key=lambda sr: (rank.get(sr[1].get("mode"), len(rank)), abs(sr[1].get("seq_len", length) - length)))
    return r["ms_per_step"], (f"bench `{s.path}` ({r.get('mode', '?')}, {r.get('preset', '?')}, length "
                              f"{r.get('seq_len', '?')}, batch {r.get('batch_size', '?')})")


def speed_accuracy_points(found: Collection) -> tuple[list[Point], list[Point], list[str]]:
    """(GLUE points, MLM points, notes on summaries that could not be placed)."""
    runs, speeds, notes = found.of("pretraining"), found.of("speed"), []
    mlm = [Point(s.data["model"], s.data.get("preset") or "-", 1e3 / s.data["steps_per_s"],
                 s.data["heldout"]["mlm_accuracy"], f"pretraining `{s.path}` ({_shape(s.data)})")
           for s in _order(runs) if s.data.get("steps_per_s") and "mlm_accuracy" in s.data.get("heldout", {})]
    glue = []
    for s in _order(found.of("glue"), lambda s: glue_size(s.data, runs)):
        g, run, size = s.data, _matching_run(s.data, runs), glue_size(s.data, runs)
        time: tuple[float, str] | None
        if run is not None and run.data.get("steps_per_s"):
            time = 1e3 / run.data["steps_per_s"], f"pretraining `{run.path}` ({_shape(run.data)})"
        else:
            length = g.get("config", {}).get("max_seq_len") or DEFAULT_LENGTH
            time = bench_time(g["model"], size, length, speeds)
        if time is None or g.get("average") is None:
            notes.append(f"`{s.path}` is not in the plot: no time per step for {g['model']} {size} (no pretraining run "
                         f"of it and no benchmark record; add `tokenmix bench speed --json` output to the folder)")
            continue
        glue.append(Point(g["model"], size, time[0], g["average"], time[1]))
    return glue, mlm, notes


def points_table(points: list[Point], accuracy_format: str) -> str:
    rows = [[p.model, p.size, format(p.accuracy, accuracy_format), f"{p.ms_per_step:.1f}", "yes" if best else "", p.time_source]
            for p, best in sorted(zip(points, pareto_front(points)), key=lambda pb: pb[0].ms_per_step)]
    return render_table(["model", "size", "accuracy", "ms/step", "Pareto front", "time per step from"], rows, markdown=True)


def build_report(config: ReportConfig) -> dict[str, Any]:
    """Write ``report.md`` and the Pareto plots into ``config.out``; return what was written."""
    claim_outputs(config)  # an existing output is refused unless config.overwrite, before any work
    found = collect(config.runs_dir)
    if not found.summaries:  # a summary that is not valid JSON is named: it may be the one that was meant
        damaged = f"; not valid JSON: {', '.join(found.unreadable[:3])}{', ...' if len(found.unreadable) > 3 else ''}"
        raise ValueError(f"no run summaries under {found.root} ({found.skipped} other JSON files"
                         f"{damaged if found.unreadable else ''}); expected "
                         f"summary.json of `tokenmix pretrain` or an LRA task, glue.json of `tokenmix glue`, or "
                         f"`tokenmix bench speed --json` output")
    out = Path(config.out)
    counts = {kind: len(found.of(kind)) for kind in KINDS}
    glue_points, mlm_points, notes = speed_accuracy_points(found)
    lines = ["# tokenmix report", "",
             f"{len(found.summaries)} summaries under `{found.root}`: " + ", ".join(f"{n} {k}" for k, n in counts.items())
             + f"; {found.skipped} other JSON files skipped.", ""]
    plots = []
    for stem, label, points, fmt in (("pareto_glue", "GLUE dev average (%)", glue_points, ".1f"),
                                     ("pareto_mlm", "held-out MLM accuracy", mlm_points, ".3f")):
        if points:
            plots += plot_pareto(points, label, out / stem)
            lines += [f"## Speed-accuracy: {label}", "", f"![{label} against time per step]({stem}.png) "
                      f"([SVG]({stem}.svg))", "", points_table(points, fmt), ""]
    if plots:
        lines += ["Time per step: the pretraining run's steps/s where there is one (runs with other lengths, batch "
                  "sizes or machines are not comparable), else a benchmark record. Pareto front: no faster point is "
                  "as accurate.", ""]
    sections = (("pretraining", "Pretraining (held-out metrics)", lambda s: pretraining_table(s)),
                ("glue", "GLUE (dev)", lambda s: glue_table(s, found.of("pretraining"), config.paper_rows)),
                ("lra", "Long Range Arena", lra_tables), ("speed", "Speed benchmarks", speed_tables))
    for kind, title, render in sections:
        if found.of(kind):
            lines += [f"## {title}", "", render(found.of(kind)), ""]
    notes += [f"`{path}` is not valid JSON and was skipped" for path in found.unreadable]
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    report = atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text("\n".join(lines), encoding="utf-8"))
    return {"report": str(report), "plots": [str(p) for p in plots], "counts": counts, "skipped": found.skipped,
            "notes": notes}
