"""``REPORT.md`` of a reproduction study: our tables beside the papers' (Tables 1–3, Figure 2), each
with our ratio to BERT next to the paper's, GLUE as mean ± sd over the fine-tuning seeds, the learning
curves of every model, and the papers' claims and the study's targets checked one by one."""

from __future__ import annotations

import json
import math
import platform
import statistics
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from tokenmix.benchmarks.glue import GLUE_TABLE_COLUMNS
from tokenmix.benchmarks.glue_metrics import FLOOR_LABEL, FLOOR_NOTE, constant_baselines, floor_cells, glue_average
from tokenmix.devices import device_name, resolve_device
from tokenmix.io.files import atomic_write, read_json
from tokenmix.reporting import paper
from tokenmix.reporting.pareto import Point, pareto_front, plot_pareto
from tokenmix.reporting.tables import render_table
from tokenmix.reproduce.configs import MODELS, SCALES, ReproduceConfig
from tokenmix.version import __version__


def _load(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


def _ratio(value: float | None, reference: float | None) -> str:
    return "-" if value is None or not reference else f"{value / reference:.2f}"


def _num(value: float | None, spec: str = ".3f") -> str:
    """A metric that may be absent (no NSP metrics after MLM-only pretraining)."""
    return "-" if value is None else format(value, spec)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _score(mean: float, sd: float, seeds: int) -> str:
    """A GLUE score as mean ± sd; one seed has no spread to show (not "± 0.0")."""
    return f"{mean:.1f}" + (f" ± {sd:.1f}" if seeds > 1 else "")


def ratio_interval(values: list[float], reference: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Confidence interval of ``mean(values) / mean(reference)`` from independent fine-tuning seeds: the delta
    method's standard error with Welch's degrees of freedom and a t quantile, so that three seeds give the wide
    interval three seeds deserve. None when either side has fewer than two seeds."""
    if len(values) < 2 or len(reference) < 2:
        return None
    mean, ref = statistics.fmean(values), statistics.fmean(reference)
    ratio = mean / ref
    terms = [statistics.variance(v) / (len(v) * m * m) for v, m in ((values, mean), (reference, ref))]
    if not any(terms):
        return ratio, ratio
    df = sum(terms) ** 2 / sum(t * t / (len(v) - 1) for t, v in zip(terms, (values, reference)))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * abs(ratio) * math.sqrt(sum(terms))
    return ratio - half, ratio + half


def load_glue(out: Path, model: str) -> dict[str, Any] | None:
    """A model's GLUE results over its fine-tuning seeds (``glue/MODEL/seed_*/glue.json``; an older
    study's single ``glue/MODEL/glue.json`` counts as one seed): per-task and average mean and sd."""
    runs = [read_json(p) for p in sorted((out / "glue" / model).glob("seed_*/glue.json"))]
    legacy = out / "glue" / model / "glue.json"
    runs = runs or ([read_json(legacy)] if legacy.is_file() else [])
    if not runs:
        return None
    tasks = [t for t in runs[0]["scores"] if all(t in r["scores"] for r in runs)]
    scores = {t: _mean_sd([r["scores"][t] for r in runs]) for t in tasks}
    average = _mean_sd([r["average"] for r in runs])
    return {"scores": {t: m for t, (m, _) in scores.items()}, "sd": {t: sd for t, (_, sd) in scores.items()},
            "average": average[0], "average_sd": average[1], "averages": [r["average"] for r in runs], "seeds": len(runs),
            "average_convention": runs[0]["average_convention"]}


def heldout_curve(out: Path, model: str) -> list[dict[str, Any]]:
    """The held-out evaluations of a model's pretraining run, in step order."""
    path = out / "pretrain" / model / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return sorted((r for r in rows if r.get("split") == "heldout"), key=lambda r: r["step"])


def plot_learning_curves(curves: dict[str, list[dict[str, Any]]], stem: Path) -> list[Path]:
    """Held-out MLM accuracy against steps and against training time, every model's curve (see
    :func:`heldout_curve`) in one figure (``stem``.png and .svg): who is ahead at a small budget, and
    where, if anywhere, the order changes."""
    from matplotlib.figure import Figure  # noqa: PLC0415 (slow to import; only the step that draws needs it)

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    by_step, by_time = figure.subplots(1, 2, sharey=True)
    for model, evaluations in curves.items():
        curve = [r for r in evaluations if "train_seconds" in r]
        accuracy = [r["mlm_accuracy"] for r in curve]
        by_step.plot([r["step"] for r in curve], accuracy, marker=".", label=model)
        by_time.plot([r["train_seconds"] / 60 for r in curve], accuracy, marker=".", label=model)
    by_step.set_xlabel("optimizer steps")
    by_time.set_xlabel("training time (minutes, evaluations excluded)")
    by_step.set_ylabel("held-out MLM accuracy")
    for ax in (by_step, by_time):
        ax.grid(True, alpha=0.3)
    by_time.legend(loc="lower right", fontsize=8)
    figure.suptitle("Pretraining learning curves: equal steps (left) and equal time (right)")
    return [atomic_write(stem.with_suffix(f".{fmt}"), partial(figure.savefig, format=fmt, dpi=120)) for fmt in ("png", "svg")]


def lead(first: list[tuple[float, float]], second: list[tuple[float, float]]) -> tuple[bool, float, float, float] | None:
    """Who is ahead at the end of two curves' common range of (x, accuracy) points, and since when:
    (first leads, x from which it led at every point, x at the end, its margin there). The second
    curve is interpolated at the first's points; None when the ranges do not overlap."""
    start, end = max(first[0][0], second[0][0]), min(first[-1][0], second[-1][0])
    grid = [x for x, _ in first if start <= x <= end]
    if not grid:
        return None
    xs, ys = zip(*second, strict=True)
    margins = [a - float(np.interp(x, xs, ys)) for x, a in first if start <= x <= end]
    leads = margins[-1] > 0
    since = len(margins) - 1
    while since > 0 and (margins[since - 1] > 0) == leads:
        since -= 1
    return leads, grid[since], grid[-1], abs(margins[-1])


def _lead_cell(model: str, baseline: str, points: dict[str, list[tuple[float, float]]], unit: str) -> str:
    found = lead(points[model], points[baseline]) if all(points.values()) else None
    if found is None:
        return "-"
    leads, since, end, margin = found
    when = f"throughout (to {unit} {end:,.0f})" if since == points[model][0][0] else f"from {unit} {since:,.0f} to {end:,.0f}"
    return f"{model if leads else baseline} ahead {when}, by {margin:.3f}"


def _leads(curves: dict[str, list[dict[str, Any]]], baseline: str = "bert") -> list[str]:
    """The Figure 2 question in words: against ``baseline``, who is ahead at equal steps and at equal
    time, since when, and by how much at the end of the range both curves cover."""
    rows = []
    for model, curve in curves.items():
        if model == baseline or not curve or not curves.get(baseline):
            continue
        pair = {m: [r for r in c if "train_seconds" in r] for m, c in ((model, curve), (baseline, curves[baseline]))}
        by_step = {m: [(r["step"], r["mlm_accuracy"]) for r in c] for m, c in pair.items()}
        by_time = {m: [(r["train_seconds"] / 60, r["mlm_accuracy"]) for r in c] for m, c in pair.items()}
        rows.append([f"{model} vs {baseline}", _lead_cell(model, baseline, by_step, "step"),
                     _lead_cell(model, baseline, by_time, "min")])
    if not rows:
        return []
    return ["Who is ahead (held-out MLM accuracy; the other curve interpolated at each evaluation; 'from' = since the "
            "last change of lead):", "", render_table(["pair", "at equal steps", "at equal time"], rows, markdown=True), ""]


def equal_steps(curves: dict[str, list[dict[str, Any]]]) -> tuple[int, dict[str, dict]]:
    """Held-out metrics of every model at the largest step all of their curves evaluated at."""
    records = {model: {r["step"]: r for r in curve} for model, curve in curves.items()}
    common = set.intersection(*(set(r) for r in records.values())) if records else set()
    if not common:
        return 0, {}
    step = max(common)
    return step, {model: records[model][step] for model in curves}


def _pretraining(models: list[str], runs: dict[str, Any], at_step: tuple[int, dict[str, dict]]) -> list[str]:
    bert = runs.get("bert")
    rows = []
    for m in models:
        r = runs[m]
        held = r["heldout"]
        ref = paper.PRETRAINING.get(f"{m}-base")
        rows.append([m, f"{r['params'] / 1e6:.1f}M", r["steps"], f"{r['steps_per_s']:.2f}", f"{held['mlm_loss']:.3f}",
                     f"{held['mlm_accuracy']:.3f}", _num(held.get("nsp_accuracy")),
                     _ratio(held["mlm_accuracy"], bert and bert["heldout"]["mlm_accuracy"]),
                     "-" if ref is None else f"{ref[3]:.2f}", "-" if ref is None else _ratio(ref[3], paper.PRETRAINING["bert-base"][3])])
    lines = ["## Pretraining (like Table 1): equal time", "",
             render_table(["model", "params", "steps", "steps/s", "MLM loss", "MLM acc", "NSP acc", "MLM acc / BERT",
                           "paper MLM acc (Base)", "paper / BERT"], rows, markdown=True), ""]
    step, at = at_step
    if at:
        rows = [[m, f"{at[m]['mlm_loss']:.3f}", f"{at[m]['mlm_accuracy']:.3f}", _num(at[m].get("nsp_accuracy")),
                 _ratio(at[m]["mlm_accuracy"], at.get("bert", {}).get("mlm_accuracy"))] for m in models]
        lines += [f"## Pretraining: equal steps (held-out metrics at step {step}, the last step every model reached)", "",
                  render_table(["model", "MLM loss", "MLM acc", "NSP acc", "MLM acc / BERT"], rows, markdown=True), ""]
    else:  # the budget is time: on a slow or busy machine the slowest model may stop before a shared evaluation
        fewest = min(runs[m]["steps"] for m in models)
        lines += ["## Pretraining: equal steps", "", f"No held-out evaluation at a step every model reached (the slowest "
                  f"stopped at step {fewest}); give the study a larger budget.", ""]
    return lines


def _fine_tuning_steps(out: Path, model: str) -> str:
    """Mean optimizer steps per fine-tuning run: under a time share the slower models get fewer."""
    steps = [read_json(p)["steps"] for p in (out / "glue" / model).rglob("fit_summary.json")]
    return f"{sum(steps) / len(steps):.0f}" if steps else "-"


def _average_ratio(g: dict[str, Any], bert: dict[str, Any] | None) -> str:
    """A model's GLUE average over BERT's, with its 95% interval when both have several seeds."""
    if not bert:
        return "-"
    interval = ratio_interval(g.get("averages", []), bert.get("averages", []))
    return _ratio(g["average"], bert["average"]) + (f" ({interval[0]:.2f}–{interval[1]:.2f})" if interval else "")


def glue_columns(models: list[str], glue: dict[str, Any]) -> list[str]:
    """The Table 2 columns any of ``models`` has a score in, in the paper's order."""
    return [c for c in GLUE_TABLE_COLUMNS if any(c in glue[m]["scores"] for m in models if glue.get(m))]


def _glue(out: Path, models: list[str], glue: dict[str, Any], time_shared: bool = True,
          floor: dict[str, float] | None = None) -> list[str]:
    """Table 2's layout, with the input-ignored row from ``floor`` (see ``constant_baselines``);
    ``time_shared``: the scale gives every model the same wall-clock share per task (otherwise every model
    runs the scale's fixed fine-tuning recipe)."""
    columns, bert, floor = glue_columns(models, glue), glue.get("bert"), floor or {}
    rows: list[list[Any]] = []
    if floor:
        rows.append([FLOOR_LABEL, "-", *floor_cells(floor, columns), "", "", ""])
    for m in models:
        if not glue.get(m):
            continue
        g, ref = glue[m], paper.GLUE_AVERAGE.get(f"{m}-base")
        seeds = g.get("seeds", 1)
        cells = [_score(g["scores"][c], g.get("sd", {}).get(c, 0.0), seeds) if c in g["scores"] else "-" for c in columns]
        rows.append([m, _fine_tuning_steps(out, m), *cells, _score(g["average"], g.get("average_sd", 0.0), seeds),
                     _average_ratio(g, bert), "-" if ref is None else ref,
                     "-" if ref is None else _ratio(ref, paper.GLUE_AVERAGE["bert-base"])])
    convention = next(iter(glue.values()))["average_convention"] if glue else ""
    seeds = max((g.get("seeds", 1) for g in glue.values() if g), default=1)
    spread = (f" Each cell: mean ± sd over {seeds} fine-tuning seeds; 'avg / BERT' adds its 95% interval in brackets "
              "(delta method, t quantile with Welch's degrees of freedom)." if seeds > 1 else "")
    budget = ("Every model gets the same wall-clock share per task (up to the scale's epochs); 'steps per task' shows "
              "how far each got in it." if time_shared else "Every model fine-tunes with the same recipe (the scale's "
              "epochs, learning rate and batch size); 'steps per task' is the mean over tasks and seeds.")
    floor_note = (f" {FLOOR_NOTE[:-1]} (a task trained on part of its dev split, as QNLI here, is scored on the rest)."
                  if floor else "")
    return [f"## GLUE dev (like Table 2){spread and f': mean ± sd over {seeds} seeds'}", "",
            render_table(["model", "steps per task", *(GLUE_TABLE_COLUMNS[c] for c in columns), "avg", "avg / BERT",
                          "paper avg (Base)", "paper / BERT"], rows, markdown=True), "",
            f"Average: {convention}. {budget}{spread}{floor_note}",
            "Test-set predictions in the GLUE server's format: `glue/MODEL/seed_*/submission/`.", ""]


def _speed(models: list[str], bench: list[dict]) -> tuple[list[str], dict[str, float]]:
    ms = {(r["model"], r["mode"], r["seq_len"]): r.get("ms_per_step") for r in bench}
    lengths = sorted({r["seq_len"] for r in bench})
    rows, step_ms = [], {}
    for m in models:
        cells = []
        for length in lengths:
            for mode in ("pretrain", "inference"):
                value, ref = ms.get((m, mode, length)), ms.get(("bert", mode, length))
                cells.append("OOM/fail" if value is None else f"{value:.1f} ({_ratio(ref, value)}x)")
        t = ms.get((m, "pretrain", lengths[0])) if lengths else None
        if t:
            step_ms[m] = t
        published, sparse = paper.SPEEDUP.get(f"{m}-base"), paper.SPARSE_MIXER.get(m)
        cells.append(f"{published[0]:.1f}x / {published[1]:.1f}x" if published else
                     f"train {sparse['train_speedup']}x, inference {sparse['inference_speedup']}x" if sparse else "-")
        rows.append([m, *cells])
    headers = ["model", *(f"{mode} ms @{n} (speed-up)" for n in lengths for mode in ("pretrain", "inference")),
               "paper speed-up (Base): GPU / TPU pretraining"]
    return ["## Speed (like Table 3): ms per step, speed-up over BERT in the same run", "",
            render_table(headers, rows, markdown=True), ""], step_ms


def _claims(runs: dict[str, Any], glue: dict[str, Any], step_ms: dict[str, float], on_front: dict[str, bool]) -> list[str]:
    avg = {m: g["average"] for m, g in glue.items() if g}
    lines, bert = ["## The papers' claims at this scale", ""], avg.get("bert")

    def share(m: str) -> str:
        return f"{100 * avg[m] / bert:.0f}%" if m in avg and bert else "n/a"

    def faster(m: str) -> str:
        if m not in step_ms or "bert" not in step_ms:
            return "n/a"
        ratio = step_ms["bert"] / step_ms[m]
        return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"

    lines.append(f"- FNet reaches {share('fnet')} of BERT's GLUE average (paper: 92% at Base; Hybrid {share('hybrid')}, "
                 f"paper 97%) with a pretraining step {faster('fnet')} (paper: 6.9x GPU, 2.0x TPU).")
    if "linear" in avg and "fnet" in avg:
        lines.append(f"- Linear vs FNet GLUE average: {avg['linear']:.1f} vs {avg['fnet']:.1f} (paper: 77.0 vs 76.7, close).")
    weak = [m for m in ("random", "ff_only") if m in avg]
    if weak and "fnet" in avg:
        lines.append("- Random / FF-only: " + ", ".join(f"{m} {avg[m]:.1f}" for m in weak)
                     + f" vs FNet {avg['fnet']:.1f} (paper: far behind, 56.6 and 49.3).")
    if "fnet" in on_front:
        lines.append(f"- FNet on the speed-accuracy Pareto front: {'yes' if on_front['fnet'] else 'no'} (paper: yes at small sizes).")
    for model, name in (("sparse_mixer", "Sparse Mixer"), ("fast_sparse_mixer", "Fast Sparse Mixer")):
        if model in avg and bert:
            claim = paper.SPARSE_MIXER[model]
            lines.append(f"- {name}: {share(model)} of BERT's GLUE average, training step {faster(model)} "
                         f"(paper: {claim['accuracy']}, {claim['train_speedup']}x faster training).")
    reached = [r["heldout"]["mlm_accuracy"] for r in runs.values()]
    level = f"{min(reached):.2f}–{max(reached):.2f}" if reached else "n/a"
    published = [row[3] for row in paper.PRETRAINING.values()]
    lines += ["", f"Where these disagree with the papers, the first suspect is scale: a short pretraining on a small "
              f"corpus leaves every model far from convergence (held-out MLM accuracy {level} here, "
              f"{min(published):.2f}–{max(published):.2f} in the paper after 1M steps on C4), and GLUE differences "
              "within the ± sd shown are noise. Speed ratios do not depend on training length, but they do depend "
              "on the size and the hardware: a mixing layer saves only what attention costs, and at small hidden sizes "
              "and short sequences the feed-forward layers, which every model shares, dominate the step, so the "
              "speed-ups grow with the sequence length (compare the columns) and are largest on accelerators, where the "
              "papers measured them at Base size."]
    if any(model in runs or model in avg for model in paper.SPARSE_MIXER):  # said only of a study that has them
        lines[-1] += (" The Sparse Mixers are deeper than BERT at the same preset (as in the paper) and their "
                      "mixture-of-experts layers pay for routing, dispatch and combine at every step; that overhead is "
                      "amortised at Base size on TPUs, not at mini size on a CPU.")
    return lines + [""]


def _verdict(ok: bool) -> str:
    return "reproduced" if ok else "**not reproduced**"


def _ordering(accuracy: dict[str, float], when: str) -> list[str]:
    """The paper's Table 1 order of MLM accuracy against ours, on the models both have."""
    expected = [m for m in paper_order() if m in accuracy]
    if len(expected) < 2:
        return []
    ours = sorted(expected, key=lambda m: -accuracy[m])
    lines = [f"- Table 1 ordering of held-out MLM accuracy {when}: ours {' > '.join(ours)}; paper "
             f"{' > '.join(expected)} ({_verdict(ours == expected)})."]
    if "hybrid" in accuracy and accuracy.get("bert"):
        ref = paper.PRETRAINING["hybrid-base"][3] / paper.PRETRAINING["bert-base"][3]
        lines.append(f"  Hybrid / BERT {when}: {accuracy['hybrid'] / accuracy['bert']:.2f} (paper {ref:.2f}).")
    return lines


def steps_to_reach(curve: list[dict[str, Any]], target: float) -> str:
    """What a learning curve says a missed accuracy would take: the slope of its last quarter of steps,
    extended in a straight line. Rough both ways: the learning rate was decaying there (a longer budget
    moves the decay, so the slope is pessimistic), and curves bend over (so it is optimistic)."""
    last = curve[-1]
    start = next(r for r in curve if r["step"] >= 0.75 * last["step"])
    gain, span = last["mlm_accuracy"] - start["mlm_accuracy"], last["step"] - start["step"]
    if gain <= 0 or span <= 0:
        return "the curve is flat at its end, so it gives no estimate"
    steps = (target - last["mlm_accuracy"]) / gain * span
    minutes = f", about {steps * last['train_seconds'] / last['step'] / 60:.0f} more minutes" if "train_seconds" in last else ""
    return (f"its last quarter ({1000 * gain / span:+.3f} per 1000 steps) extended in a straight line: about "
            f"{steps:,.0f} more steps{minutes}")


def _targets(runs: dict[str, Any], glue: dict[str, Any], at_step: tuple[int, dict[str, dict]] = (0, {}),
             curves: dict[str, list[dict[str, Any]]] | None = None, floor: dict[str, float] | None = None) -> list[str]:
    """Issue 21's targets for a mini-size study, each with its value (GLUE: mean ± sd over the seeds); a
    missed MLM-accuracy target says what its learning curve (``curves``: held-out evaluations) suggests it would take."""
    lines = ["## Targets at this scale", ""]
    for model in ("bert", "fnet"):
        if model in runs:
            accuracy = runs[model]["heldout"]["mlm_accuracy"]
            line = f"- {model} held-out MLM accuracy ≥ 0.30 at the budget: {accuracy:.3f} ({_verdict(accuracy >= 0.30)})"
            if accuracy < 0.30 and (curve := (curves or {}).get(model)):
                line += f"; {steps_to_reach(curve, 0.30)}"
            lines.append(line + ".")
    lines += _ordering({m: r["heldout"]["mlm_accuracy"] for m, r in runs.items()}, "at equal time")
    step, at = at_step
    lines += _ordering({m: r["mlm_accuracy"] for m, r in at.items()}, f"at equal steps ({step})")

    def score(model: str, task: str) -> str:
        g = glue[model]
        return _score(g["scores"][task], g["sd"][task], g.get("seeds", 1))

    bert = glue.get("bert")
    for task, minimum in (("sst2", 82.0), ("qnli", 65.0)):
        if bert and task in bert["scores"]:
            lines.append(f"- bert {task.upper()} ≥ {minimum:g}: {score('bert', task)} ({_verdict(bert['scores'][task] >= minimum)}).")
    if bert and "fnet" in glue:
        lines.append(_share_target(glue["fnet"], bert, 0.85, floor or {}))
    if "ff_only" in glue and "sst2" in glue["ff_only"]["scores"]:
        accuracy = glue["ff_only"]["scores"]["sst2"]
        lines.append(f"- ff_only at chance on SST-2 (its [CLS] never sees another token; 50.9 = majority class): "
                     f"{score('ff_only', 'sst2')} ({_verdict(abs(accuracy - 50.0) <= 3.0)}).")
    return [*lines, ""] if len(lines) > 2 else []


def _share_target(fnet: dict[str, Any], bert: dict[str, Any], target: float, floor: dict[str, float]) -> str:
    """FNet's GLUE average as a share of BERT's against ``target``, with whether its 95% interval settles it,
    and, given the input-ignored ``floor`` of the same tasks, the share of BERT's gain over that floor (a
    share of the averages alone flatters a model that stays at the floor on tasks where BERT does too)."""
    share = fnet["average"] / bert["average"]
    interval = ratio_interval(fnet.get("averages", []), bert.get("averages", []))
    if interval is None:
        spread = "one seed on a side, so no interval"
    else:
        low, high = interval
        settled = low >= target if share >= target else high < target
        spread = (f"95% interval {100 * low:.0f}–{100 * high:.0f}% over {fnet['seeds']} and {bert['seeds']} seeds, which "
                  + ("settles it" if settled else f"reaches across {100 * target:.0f}%, so these seeds do not settle it"))
    line = f"- fnet GLUE average ≥ {100 * target:.0f}% of bert's: {100 * share:.0f}% ({spread}; {_verdict(share >= target)})."
    base = glue_average(floor) if floor and set(floor) == set(fnet["scores"]) == set(bert["scores"]) else None
    if base is not None and bert["average"] > base:
        line += (f" Above the input-ignored average of {base:.1f}, FNet gains {fnet['average'] - base:.1f} points to BERT's "
                 f"{bert['average'] - base:.1f}: {100 * (fnet['average'] - base) / (bert['average'] - base):.0f}% of its gain.")
    return line


def paper_order() -> list[str]:
    """FNet paper Table 1's order of MLM accuracy (Base): BERT > Hybrid > Linear > FNet > Random > FF-only."""
    return sorted((name.removesuffix("-base") for name in paper.PRETRAINING), key=lambda m: -paper.PRETRAINING[f"{m}-base"][3])


def command_line(config: ReproduceConfig) -> str:
    """The command that makes (and continues) this study: ``--models`` when not every model, ``--budget``
    only where the scale shares it out (the budget scale fixes each stage's time itself)."""
    parts = ["tokenmix reproduce", f"--scale {config.scale}"]
    if "pretrain_seconds" not in SCALES[config.scale]:
        parts.append(f"--budget {config.budget}")
    parts += [f"--data {config.data}", f"--out {config.out}"]
    if tuple(config.models) != MODELS:
        parts.append(f"--models {','.join(config.models)}")
    return " ".join(parts)


def stage_lines(stages: list[dict[str, Any]]) -> list[str]:
    """The time of each stage, summed over the invocations that worked on it; a stage in progress says so."""
    timed = [f"{s['stage']} ({s['seconds']:,.0f} s{' so far' if s['status'] == 'interrupted' else ''})"
             for s in stages if "seconds" in s]
    untimed = sum("seconds" not in s for s in stages)  # finished by a version that did not record times
    if untimed:
        timed.append(f"{untimed} more without a recorded time")
    return [f"- stages: {', '.join(timed)}"] if timed else []


def write_report(out: Path, config: ReproduceConfig, marker: dict[str, Any]) -> Path:
    models = list(config.models)
    runs = {m: _load(out / "pretrain" / m / "summary.json") for m in models}
    done = {m: r for m, r in runs.items() if r}
    curves = {m: heldout_curve(out, m) for m in models}  # read once: plot, tables and targets
    at_step = equal_steps({m: curves[m] for m in done})
    glue = {m: load_glue(out, m) for m in models}
    floor = constant_baselines(Path(config.data) / "glue", glue_columns(models, glue))
    bench = _load(out / "bench" / "speed.json") or []
    bench = bench["results"] if isinstance(bench, dict) else bench
    lines = ["# Reproduction study", "", f"`{command_line(config)}`",
             "", f"- started {marker.get('started')}, finished {marker.get('finished') or 'not yet'}",
             f"- machine: {device_name(resolve_device(config.device))}, {platform.platform()}, Python {platform.python_version()}",
             f"- versions: tokenmix {__version__}, torch {torch.__version__}", *stage_lines(marker.get("stages", [])), ""]
    if not all(runs.values()) or not all(glue.values()):
        lines += ["**Unfinished**: rerun the same command to continue (finished stages are kept, the one in progress "
                  "resumes from its checkpoint); the tables below show what is done.", ""]
    if all(runs.values()):
        lines += _pretraining(models, runs, at_step)
    if any(curves.values()):
        plot_learning_curves(curves, out / "learning_curves")
        lines += ["## Learning curves (the papers' Figure 2 argument at this scale)", "",
                  "![held-out MLM accuracy against steps and against training time](learning_curves.png)", "",
                  *_leads(curves)]
    if any(glue.values()):
        lines += _glue(out, models, glue, time_shared="pretrain_seconds" not in SCALES[config.scale], floor=floor)
    step_ms: dict[str, float] = {}
    if bench:
        speed_lines, step_ms = _speed(models, bench)
        lines += speed_lines
    points = [Point(m, config.scale, step_ms[m], g["average"], "bench/speed.json")
              for m in models if (g := glue.get(m)) and m in step_ms]
    on_front = {}
    if points:
        plot_pareto(points, "GLUE dev average (%)", out / "pareto")
        on_front = {p.model: front for p, front in zip(points, pareto_front(points))}
        lines += ["## Speed-accuracy (like Figure 2)", "", "![GLUE average against pretraining ms per step](pareto.png)", ""]
    lines += _claims(done, {m: g for m, g in glue.items() if g}, step_ms, on_front)
    lines += _targets(done, {m: g for m, g in glue.items() if g}, at_step, curves, floor)
    return atomic_write(out / "REPORT.md", lambda tmp: Path(tmp).write_text("\n".join(lines), encoding="utf-8"))
