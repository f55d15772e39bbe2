"""`tokenmix reproduce` at a cut-down tiny scale: every stage, REPORT.md, resumption, refusals."""

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tokenmix.benchmarks.glue_metrics import constant_baselines
from tokenmix.cli.main import main
from tokenmix.io.files import write_json
from tokenmix.models.config import parse_overrides
from tokenmix.reproduce import study
from tokenmix.reproduce.configs import ReproduceConfig, parse_budget
from tokenmix.reproduce.writeup import _glue, _targets, glue_columns, load_glue, ratio_interval
from tokenmix.train.configs import PretrainConfig

SHARED = Path(__file__).parents[2] / "shared" / "data"


def test_budget_parsing_and_refusals(capsys, tmp_path):
    assert parse_budget("2h") == 7200 and parse_budget("1h30m") == 5400 and parse_budget("45s") == parse_budget("45") == 45
    with pytest.raises(ValueError, match="not a duration"):
        parse_budget("soon")
    assert main(["reproduce", "--scale", "mini", "--budget", "10m", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "too small for --scale mini" in err and "what fits: --scale tiny" in err
    assert main(["reproduce", "--scale", "tiny", "--budget", "5m", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "missing data for the study" in capsys.readouterr().err
    # no models ran the corpus, tokenizer and data stages, then failed with an internal ZeroDivisionError
    assert main(["reproduce", "--scale", "tiny", "--models", "", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err == ("tokenmix: error: --models is empty; give at least one value, e.g. --models "
                                       "bert,fnet,linear,random,ff_only,hybrid,sparse_mixer,fast_sparse_mixer\n")
    assert not (tmp_path / "r").exists()


def test_bad_data_and_out_folders_are_refused_before_the_first_stage(capsys, tmp_path):
    """--data given a file listed every file 'missing' under it; --out a file or an unwritable path said only
    'Not a directory' / 'No such file'; a damaged reproduce.json gave 'malformed JSON' without its name."""
    from tokenmix.benchmarks.glue import get_glue_task
    from tokenmix.reproduce.configs import SCALES
    from tokenmix.reproduce.study import CORPUS, MARKER

    data = tmp_path / "data"
    (data / CORPUS).parent.mkdir(parents=True)
    (data / CORPUS).write_bytes(b"")
    for task in SCALES["tiny"]["glue_tasks"]:
        (data / "glue" / get_glue_task(task).folder).mkdir(parents=True)
    (tmp_path / "file.txt").write_text("keep me")
    damaged = tmp_path / "study"
    damaged.mkdir()
    (damaged / MARKER).write_text('{"config": ')
    args = ["reproduce", "--scale", "tiny", "--budget", "1h", "--data", str(data), "--out"]
    cases = {str(tmp_path / "file.txt"): f"--out {tmp_path / 'file.txt'} is a file; give a folder",
             "/proc/study": "--out /proc/study: cannot write to /proc/study",
             str(damaged): f"{damaged / MARKER} is damaged (not the JSON record of a study); pass --overwrite"}
    for out, expected in cases.items():
        assert main([*args, out]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert main([*args[:-3], "--data", str(tmp_path / "file.txt"), "--out", str(tmp_path / "r")]) == 1
    assert f"--data {tmp_path / 'file.txt'} is not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "file.txt", "study"]
    assert (tmp_path / "file.txt").read_text() == "keep me" and (damaged / MARKER).read_text() == '{"config": '


@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED / "glue" / "SST-2").is_dir(), reason="needs ../shared/data")
def test_tiny_study_runs_every_stage_and_resumes(tmp_path, monkeypatch, capsys):
    tiny = {**study.SCALES["tiny"], "min_budget_s": 10, "corpus_mb": 0.3, "vocab_size": 400, "glue_tasks": ["sst2", "rte"],
            "glue_max_train_examples": 64, "bench_seq_lens": [64], "bench_repeats": 1, "eval_every": 5, "glue_seeds": 2,
            "save_every": 5}
    monkeypatch.setitem(study.SCALES, "tiny", tiny)
    out = tmp_path / "study"
    args = ["reproduce", "--scale", "tiny", "--budget", "40s", "--models", "bert,fnet", "--data", str(SHARED),
            "--out", str(out), "--device", "cpu"]
    # --max-time ends the first invocation early (the training stage in progress checkpoints); reruns continue
    assert main([*args, "--max-time", "4"]) == 0
    assert "rerun the same command to continue" in capsys.readouterr().err
    assert "**Unfinished**" in (out / "REPORT.md").read_text()
    recorded = {e["stage"]: e for e in json.loads((out / "reproduce.json").read_text())["stages"]}
    assert recorded["corpus"]["seconds"] >= 0  # each stage is recorded when it ends, not when the invocation does
    assert main(args) == 0
    report = (out / "REPORT.md").read_text()
    assert f"`tokenmix reproduce --scale tiny --budget 40s --data {SHARED} --out {out} --models bert,fnet`" in report
    assert "- stages: corpus (" in report and "finished not yet" not in report
    for heading in ("Pretraining (like Table 1)", "equal steps", "Learning curves", "GLUE dev (like Table 2): mean ± sd over 2 seeds",
                    "Speed (like Table 3)", "Speed-accuracy (like Figure 2)", "claims at this scale", "Targets at this scale"):
        assert heading in report
    assert "Unfinished" not in report and "bert held-out MLM accuracy ≥ 0.30" in report
    assert (out / "pareto.png").is_file() and (out / "learning_curves.png").is_file()
    for seed in (0, 1):
        glue = json.loads((out / "glue" / "fnet" / f"seed_{seed}" / "glue.json").read_text())
        assert glue["scores"] and (out / "glue" / "fnet" / f"seed_{seed}" / "submission" / "SST-2.tsv").is_file()
    capsys.readouterr()
    assert main(args) == 0  # everything is cached: only the report is rewritten
    assert capsys.readouterr().err.count("skipped") == 10
    assert main([*args[:-4], "--models", "bert", "--out", str(out), "--device", "cpu"]) == 1
    assert "another configuration (models: ['bert', 'fnet'] -> ['bert'])" in capsys.readouterr().err


def test_the_report_gives_the_command_that_continues_the_study():
    from tokenmix.reproduce.configs import MODELS, ReproduceConfig
    from tokenmix.reproduce.writeup import command_line

    # the budget scale fixes each stage's time, so --budget is left out; every model is the default
    assert command_line(ReproduceConfig(scale="budget", data="d", out="o", models=MODELS)) == \
        "tokenmix reproduce --scale budget --data d --out o"
    assert command_line(ReproduceConfig(scale="mini", budget="3h", data="d", out="o", models=("bert", "fnet"))) == \
        "tokenmix reproduce --scale mini --budget 3h --data d --out o --models bert,fnet"


def test_report_checks_the_papers_claims_with_our_ratios():
    from tokenmix.reproduce.writeup import _claims, _speed

    glue = {m: {"average": a} for m, a in (("bert", 50.0), ("fnet", 46.0), ("linear", 45.0), ("random", 40.0),
                                           ("sparse_mixer", 51.0), ("fast_sparse_mixer", 49.0))}
    bench = [{"model": m, "mode": mode, "seq_len": 128, "ms_per_step": ms * (1 if mode == "pretrain" else 0.5)}
             for m, ms in (("bert", 100.0), ("fnet", 25.0), ("sparse_mixer", 50.0), ("fast_sparse_mixer", 125.0))
             for mode in ("pretrain", "inference")]
    lines, step_ms = _speed(list(glue), bench)
    table = "\n".join(lines)
    assert "| fnet | 25.0 (4.00x) | 12.5 (4.00x) | 6.9x / 2.0x |" in table
    assert "| sparse_mixer | 50.0 (2.00x) | 25.0 (2.00x) | train 1.65x, inference 1.61x |" in table
    assert "| linear | OOM/fail | OOM/fail | 5.7x / 1.8x |" in table
    runs = {m: {"heldout": {"mlm_accuracy": a}} for m, a in (("bert", 0.24), ("fnet", 0.27))}
    claims = "\n".join(_claims(runs, glue, step_ms, {"fnet": True}))
    assert "(held-out MLM accuracy 0.24–0.27 here, 0.13–0.68 in the paper" in claims
    assert "FNet reaches 92% of BERT's GLUE average" in claims and "pretraining step 4.00x faster (paper" in claims
    assert "Linear vs FNet GLUE average: 45.0 vs 46.0" in claims and "random 40.0" in claims
    assert "FNet on the speed-accuracy Pareto front: yes" in claims
    assert "- Sparse Mixer: 102% of BERT's GLUE average, training step 2.00x faster (paper: slightly" in claims
    assert "- Fast Sparse Mixer: 98% of BERT's GLUE average, training step 1.25x slower (paper: within 0.2%" in claims
    assert "The Sparse Mixers are deeper than BERT" in claims
    dense = {m: g for m, g in glue.items() if "sparse" not in m}
    assert "Sparse Mixer" not in "\n".join(_claims(runs, dense, step_ms, {"fnet": True}))  # a study without them


def test_equal_steps_section_says_so_when_no_step_is_shared(tmp_path):
    """A time budget on a busy machine can stop the slowest model before any evaluation the others made:
    the report still has its section and says why it is empty (this used to drop the section)."""
    from tokenmix.reproduce.writeup import _pretraining, equal_steps, heldout_curve

    held = {"loss": 1.0, "mlm_loss": 0.9, "nsp_loss": 0.1, "mlm_accuracy": 0.1, "nsp_accuracy": 0.5}
    for model, steps in (("bert", [4]), ("fnet", [5, 10])):
        (tmp_path / "pretrain" / model).mkdir(parents=True)
        lines = (json.dumps({"step": s, "split": "heldout", **held}) for s in steps)
        (tmp_path / "pretrain" / model / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    runs = {m: {"steps": s, "heldout": held, "steps_per_s": 1.0, "params": 10} for m, s in (("bert", 4), ("fnet", 10))}
    report = "\n".join(_pretraining(["bert", "fnet"], runs, equal_steps({m: heldout_curve(tmp_path, m) for m in ("bert", "fnet")})))
    assert "## Pretraining: equal steps\n\nNo held-out evaluation at a step every model reached (the slowest stopped at step 4)" in report


def test_glue_over_seeds_is_mean_and_sd_and_the_targets_say_what_is_reproduced(tmp_path):
    for seed, (sst2, qnli) in enumerate(((84.0, 60.0), (86.0, 64.0), (85.0, 68.0))):
        for model, scale in (("bert", 1.0), ("fnet", 0.9), ("ff_only", 0.6)):
            scores = {"sst2": sst2 * scale, "qnli": qnli * scale}
            write_json(tmp_path / "glue" / model / f"seed_{seed}" / "glue.json",
                       {"scores": scores, "average": sum(scores.values()) / 2, "average_convention": "mean"})
    bert = load_glue(tmp_path, "bert")
    assert bert["seeds"] == 3 and bert["scores"]["sst2"] == pytest.approx(85.0) and bert["sd"]["sst2"] == pytest.approx(1.0)
    assert bert["average"] == pytest.approx(74.5) and load_glue(tmp_path, "linear") is None
    glue = {m: load_glue(tmp_path, m) for m in ("bert", "fnet", "ff_only")}
    runs = {m: {"heldout": {"mlm_accuracy": a}} for m, a in (("bert", 0.31), ("fnet", 0.35), ("ff_only", 0.1))}
    at_step = {m: {"mlm_accuracy": a} for m, a in (("bert", 0.2), ("fnet", 0.15), ("ff_only", 0.05), ("hybrid", 0.19))}
    targets = "\n".join(_targets(runs, glue, (1000, at_step)))
    assert "- bert held-out MLM accuracy ≥ 0.30 at the budget: 0.310 (reproduced)." in targets
    assert "at equal time: ours fnet > bert > ff_only; paper bert > fnet > ff_only (**not reproduced**)" in targets
    assert "at equal steps (1000): ours bert > hybrid > fnet > ff_only; paper bert > hybrid > fnet > ff_only (reproduced)" in targets
    assert "Hybrid / BERT at equal steps (1000): 0.95 (paper 0.93)." in targets
    assert "- bert SST2 ≥ 82: 85.0 ± 1.0 (reproduced)." in targets and "- bert QNLI ≥ 65: 64.0 ± 4.0 (**not reproduced**)" in targets
    assert ("- fnet GLUE average ≥ 85% of bert's: 90% (95% interval 84–96% over 3 and 3 seeds, which reaches across 85%, "
            "so these seeds do not settle it; reproduced).") in targets
    assert "ff_only at chance on SST-2" in targets and "51.0 ± 0.6 (reproduced)" in targets
    table = "\n".join(_glue(tmp_path, ["bert", "fnet"], glue))
    assert "mean ± sd over 3 seeds" in table and "| 85.0 ± 1.0 |" in table and "| 0.90 (0.84–0.96) |" in table
    assert "the same wall-clock share per task" in table
    floor = constant_baselines(Path(__file__).parent / "fixtures" / "glue", glue_columns(["bert"], glue))
    fixed = "\n".join(_glue(tmp_path, ["bert"], {"bert": {**bert, "seeds": 1, "averages": [74.5]}}, time_shared=False,
                             floor=floor))
    row = next(line for line in fixed.splitlines() if line.startswith("| input ignored"))
    assert row.split(" | ")[1:5] == ["-", "50.0", "66.7", "58.3"] and "always answering the majority class" in fixed
    assert constant_baselines(tmp_path / "no-data", ["sst2"]) == {}
    against_floor = "\n".join(_targets({}, glue, floor={"sst2": 50.0, "qnli": 50.0}))
    assert "Above the input-ignored average of 50.0, FNet gains 17.0 points to BERT's 24.5: 70% of its gain." in against_floor
    assert "the same recipe (the scale's epochs" in fixed and "| 85.0 |" in fixed and "±" not in fixed.split("Average")[0]


def test_the_interval_of_a_ratio_of_seed_means_covers_the_truth_as_often_as_it_says():
    rng = np.random.default_rng(0)
    covered = [lo <= 0.875 <= hi for lo, hi in (ratio_interval(list(rng.normal(70, 3, 3)), list(rng.normal(80, 2, 3)))
                                                 for _ in range(1000))]
    assert 0.93 <= sum(covered) / 1000 <= 0.975
    assert ratio_interval([1.0, 1.0], [2.0, 2.0]) == (0.5, 0.5) and ratio_interval([1.0], [2.0, 3.0]) is None


def test_a_missed_accuracy_target_says_what_its_learning_curve_suggests():
    from tokenmix.reproduce.writeup import steps_to_reach

    curve = [{"step": s, "mlm_accuracy": 0.05 + s / 20_000, "train_seconds": 1.2 * s} for s in (1000, 2000, 3000, 4000)]
    assert steps_to_reach(curve, 0.30) == ("its last quarter (+0.050 per 1000 steps) extended in a straight line: "
                                           "about 1,000 more steps, about 20 more minutes")
    flat = [{"step": s, "mlm_accuracy": 0.12} for s in (100, 200)]
    assert steps_to_reach(flat, 0.30) == "the curve is flat at its end, so it gives no estimate"
    runs = {"bert": {"heldout": {"mlm_accuracy": 0.25}}, "fnet": {"heldout": {"mlm_accuracy": 0.31}}}
    targets = "\n".join(_targets(runs, {}, curves={"bert": curve, "fnet": curve}))
    assert "- bert held-out MLM accuracy ≥ 0.30 at the budget: 0.250 (**not reproduced**); its last quarter" in targets
    assert "- fnet held-out MLM accuracy ≥ 0.30 at the budget: 0.310 (reproduced).\n" in targets


def test_the_learning_curves_say_who_is_ahead_since_when_at_equal_steps_and_time():
    from tokenmix.reproduce.writeup import _leads, lead

    first, second = [(0, 0.1), (1, 0.2), (2, 0.3), (3, 0.4)], [(0, 0.15), (3, 0.35)]
    leads, since, end, margin = lead(first, second)  # second interpolated: 0.15, 0.217, 0.283, 0.35
    assert leads and (since, end) == (2, 3) and margin == pytest.approx(0.05)
    assert lead([(5, 0.1), (6, 0.2)], second) is None  # no common range
    curves = {"bert": [{"step": s, "train_seconds": 1200.0 * s, "mlm_accuracy": a} for s, a in second],
              "fnet": [{"step": s, "train_seconds": 600.0 * s, "mlm_accuracy": a} for s, a in first]}
    table = "\n".join(_leads(curves))
    # equal time: fnet at minutes 0, 10, 20, 30 against bert's 0.183, 0.217, 0.25 interpolated there
    assert "| fnet vs bert | fnet ahead from step 2 to 3, by 0.050 | fnet ahead from min 10 to 30, by 0.150 |" in table
    assert _leads({"fnet": curves["fnet"]}) == []  # nothing to compare with


def test_the_budget_scale_builds_valid_pretraining_settings():
    scale = study.SCALES["budget"]
    config = ReproduceConfig(scale="budget", max_time=600.0)
    assert config.max_time == 600.0 and study.glue_seeds(config) == [0, 1, 2]
    settings = PretrainConfig(data="d", out="o", recipe=scale["recipe"], override=tuple(scale["overrides"]),
                              max_time=scale["pretrain_seconds"], learning_rate=scale["learning_rate"])
    assert (settings.nsp, settings.schedule, settings.batch_size) == ("none", "budget", 64)
    assert parse_overrides(settings.override) == {"dropout": 0.0, "attention_dropout": 0.0, "norm_position": "pre"}
    with pytest.raises(ValueError, match="--max-time must be > 0"):
        ReproduceConfig(scale="budget", max_time=0.0)


def test_deadline_interrupts_outside_training_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="--max-time reached"), study.Deadline(0.05) as deadline:
        while True:
            time.sleep(0.01)
    assert deadline.fired and signal.getsignal(signal.SIGTERM) == before
    with study.Deadline(None) as idle:
        pass
    assert not idle.fired


def test_a_stage_continued_across_invocations_reports_its_whole_time(tmp_path, monkeypatch):
    """The budget scale runs in --max-time chunks: a stage cut short keeps the seconds it spent and the
    invocation that finishes it adds its own (only the last chunk's time was reported)."""
    from tokenmix.reproduce.writeup import stage_lines

    clock = iter([0.0, 0.0, 100.0, 100.0, 100.0, 300.0, 300.0])  # per invocation: start, stage begins, ends
    monkeypatch.setattr(study.time, "perf_counter", lambda: next(clock))
    write_json(tmp_path / study.MARKER, {"config": {}, "stages": [{"stage": "corpus", "status": "cached"}]})
    output = tmp_path / "done.txt"

    def cut_short() -> None:
        raise KeyboardInterrupt  # what --max-time sends

    with pytest.raises(KeyboardInterrupt):
        study.Stages(tmp_path, None).run("pretrain fnet", output, cut_short)
    stages = json.loads((tmp_path / study.MARKER).read_text())["stages"]
    assert stages[-1] == {"stage": "pretrain fnet", "status": "interrupted", "seconds": 100.0}
    assert stage_lines(stages) == ["- stages: pretrain fnet (100 s so far), 1 more without a recorded time"]
    study.Stages(tmp_path, None).run("pretrain fnet", output, lambda: output.write_text("x"))
    stages = json.loads((tmp_path / study.MARKER).read_text())["stages"]
    assert stages[-1] == {"stage": "pretrain fnet", "status": "ran", "seconds": 300.0}  # 100 + 200
    study.Stages(tmp_path, None).run("pretrain fnet", output, cut_short)  # finished: cached, its time kept
    assert json.loads((tmp_path / study.MARKER).read_text())["stages"][-1]["seconds"] == 300.0
