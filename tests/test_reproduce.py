"""`tokenmix reproduce` at a cut-down tiny scale: every stage, REPORT.md, resumption, refusals."""

import json
from pathlib import Path

import pytest

from tokenmix.cli.main import main
from tokenmix.reproduce import study
from tokenmix.reproduce.configs import parse_budget

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


@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED / "glue" / "SST-2").is_dir(), reason="needs ../shared/data")
def test_tiny_study_runs_every_stage_and_resumes(tmp_path, monkeypatch, capsys):
    tiny = {**study.SCALES["tiny"], "min_budget_s": 10, "corpus_mb": 0.3, "vocab_size": 400, "glue_tasks": ["sst2", "rte"],
            "glue_max_train_examples": 64, "bench_seq_lens": [64], "bench_repeats": 1, "eval_every": 5}
    monkeypatch.setitem(study.SCALES, "tiny", tiny)
    out = tmp_path / "study"
    args = ["reproduce", "--scale", "tiny", "--budget", "40s", "--models", "bert,fnet", "--data", str(SHARED),
            "--out", str(out), "--device", "cpu"]
    assert main(args) == 0
    report = (out / "REPORT.md").read_text()
    for heading in ("Pretraining (like Table 1)", "equal steps", "GLUE dev (like Table 2)", "Speed (like Table 3)",
                    "Speed-accuracy (like Figure 2)", "claims at this scale"):
        assert heading in report
    assert (out / "pareto.png").is_file() and json.loads((out / "glue" / "fnet" / "glue.json").read_text())["scores"]
    capsys.readouterr()
    assert main(args) == 0  # everything is cached: only the report is rewritten
    assert capsys.readouterr().err.count("skipped") == 8
    assert main([*args[:-4], "--models", "bert", "--out", str(out), "--device", "cpu"]) == 1
    assert "another configuration (models: ['bert', 'fnet'] -> ['bert'])" in capsys.readouterr().err


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
    claims = "\n".join(_claims(glue, step_ms, {"fnet": True}))
    assert "FNet reaches 92% of BERT's GLUE average" in claims and "pretraining step 4.00x faster (paper" in claims
    assert "Linear vs FNet GLUE average: 45.0 vs 46.0" in claims and "random 40.0" in claims
    assert "FNet on the speed-accuracy Pareto front: yes" in claims
    assert "- Sparse Mixer: 102% of BERT's GLUE average, training step 2.00x faster (paper: slightly" in claims
    assert "- Fast Sparse Mixer: 98% of BERT's GLUE average, training step 1.25x slower (paper: within 0.2%" in claims


def test_equal_steps_section_says_so_when_no_step_is_shared(tmp_path):
    """A time budget on a busy machine can stop the slowest model before any evaluation the others made:
    the report still has its section and says why it is empty (this used to drop the section)."""
    from tokenmix.reproduce.writeup import _pretraining

    held = {"loss": 1.0, "mlm_loss": 0.9, "nsp_loss": 0.1, "mlm_accuracy": 0.1, "nsp_accuracy": 0.5}
    for model, steps in (("bert", [4]), ("fnet", [5, 10])):
        (tmp_path / "pretrain" / model).mkdir(parents=True)
        lines = (json.dumps({"step": s, "split": "heldout", **held}) for s in steps)
        (tmp_path / "pretrain" / model / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    runs = {m: {"steps": s, "heldout": held, "steps_per_s": 1.0, "params": 10} for m, s in (("bert", 4), ("fnet", 10))}
    report = "\n".join(_pretraining(tmp_path, ["bert", "fnet"], runs))
    assert "## Pretraining: equal steps\n\nNo held-out evaluation at a step every model reached (the slowest stopped at step 4)" in report
